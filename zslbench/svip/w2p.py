"""Patch semantic contextualisation (PSC, SVIP.md §4): the semantic vector e and how it is applied.

W2P maps the attribute word vectors W_att [A, d_w] to one 4D vector shared by every image and
position: ``v2p = Linear(d_w → D)``, ``p2t = Linear(A → 4)``, ``e = p2t(v2p(W_att)ᵀ)`` → [D, 4],
flattened **as the reference does**: element ``d·4 + j`` of e is entry (d, j) (row-major flatten of
[D, 4]), then added position-wise to a super-patch laid out as [4 patches × D]. (A [4, D]-major
reshape is the same learned linear family up to a fixed permutation of e.)

Ablation ``word_init=False`` ("w/o W2P"): e is a free learnable vector, initialised N(0, 0.02²)
(timm's initialisation scale for the CLS token and position embeddings).

Contextualising the non-kept super-patches: ``add`` (reference) v_i + e, ``replace`` v_i ← e.
(``drop`` removes their tokens instead; the model does that, no e is involved.)

Example:
    >>> import torch
    >>> w2p = WordToPatch(torch.randn(12, 50), dim=8)
    >>> w2p().shape
    torch.Size([32])
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn


class WordToPatch(nn.Module):
    """e = flatten(p2t(v2p(W_att)ᵀ)), a [4D] vector from the attribute word vectors."""

    def __init__(self, word_vectors: Tensor, dim: int):
        super().__init__()
        word_vectors = torch.as_tensor(word_vectors, dtype=torch.float32)
        self.register_buffer("word_vectors", word_vectors, persistent=False)
        self.v2p = nn.Linear(word_vectors.shape[1], dim)
        self.p2t = nn.Linear(word_vectors.shape[0], 4)

    def forward(self) -> Tensor:
        per_dim = self.p2t(self.v2p(self.word_vectors).transpose(0, 1))  # [D, 4]
        return per_dim.reshape(-1)


class FreeContextVector(nn.Module):
    """A learnable [4D] vector, randomly initialised ("w/o W2P")."""

    def __init__(self, dim: int, std: float = 0.02):
        super().__init__()
        self.vector = nn.Parameter(torch.randn(4 * dim) * std)

    def forward(self) -> Tensor:
        return self.vector


def contextualize(superpatches: Tensor, kept: Tensor, vector: Tensor,
                  mode: Literal["add", "replace"] = "add") -> Tensor:
    """Non-kept super-patches become ``v + e`` (``add``) or ``e`` (``replace``); kept ones are unchanged.

    ``superpatches`` [B, P, 4D], ``kept`` [B, P] bool, ``vector`` [4D].

    >>> v = torch.zeros(1, 2, 4); e = torch.ones(4); kept = torch.tensor([[True, False]])
    >>> contextualize(v + 2, kept, e, "add")[0, :, 0].tolist()
    [2.0, 3.0]
    >>> contextualize(v + 2, kept, e, "replace")[0, :, 0].tolist()
    [2.0, 1.0]
    """
    vector = vector.to(superpatches.dtype)
    if mode == "add":
        changed = superpatches + vector
    elif mode == "replace":
        changed = vector.expand_as(superpatches)
    else:
        raise ValueError(f"unknown contextualisation {mode!r}; valid: add, replace (drop is handled by the model)")
    return torch.where(kept.unsqueeze(-1), superpatches, changed)
