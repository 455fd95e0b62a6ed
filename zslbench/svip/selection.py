"""Which super-patches are kept: score grouping, pseudo-labels and the other selection rules (SVIP.md §3, §5).

Score grouping (G² patch scores → P super-patch scores):

* ``strip4`` (default, the reference implementation): reshape the row-major G² scores to [P, 4] and
  average the last axis — i.e. horizontal strips of 4 consecutive patches (wrapping across rows when
  4 does not divide G), which do *not* line up with the 2×2 blocks of the embeddings;
* ``block``: the true 2×2 block average, in the super-patch order of :mod:`zslbench.backbones.superpatch`.

Pseudo-labels (PatchCls targets, 1 = semantic-unrelated): the top-K super-patches by score are
kept (label 0), the other P − K are unrelated (label 1) — ``hard``. ``soft`` uses continuous targets
``1 − (s − min s) / (max s − min s)`` per image, so the highest-scoring super-patch has target 0,
the lowest target 1 (a constant score map gives 0.5 everywhere); the kept set is still the top-K.

Example:
    >>> import torch
    >>> scores = torch.arange(16.).reshape(1, 16)  # a 4×4 map, score = token index
    >>> group_scores(scores, 4, "strip4").tolist(), group_scores(scores, 4, "block").tolist()
    ([[1.5, 5.5, 9.5, 13.5]], [[2.5, 4.5, 10.5, 12.5]])
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from zslbench.backbones.superpatch import group


def group_scores(scores: Tensor, grid: int, mode: Literal["strip4", "block"] = "strip4") -> Tensor:
    """Patch scores ``[B, G²]`` → super-patch scores ``[B, P]``."""
    if mode == "strip4":
        return scores.reshape(scores.shape[0], -1, 4).mean(dim=-1)
    if mode == "block":
        return group(scores.unsqueeze(-1), grid).mean(dim=-1)
    raise ValueError(f"unknown score grouping {mode!r}; valid: strip4, block")


def top_k_mask(scores: Tensor, k: int, largest: bool = True) -> Tensor:
    """Bool ``[B, n]``: True at the ``k`` highest (``largest``) or lowest scores of each row."""
    index = scores.topk(min(k, scores.shape[1]), dim=1, largest=largest).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, index, True)


def random_mask(batch: int, count: int, k: int, device: torch.device | str = "cpu") -> Tensor:
    """Bool ``[B, n]`` with ``k`` uniformly random True per row ("w/o SSPS"); uses the global RNG."""
    return top_k_mask(torch.rand(batch, count, device=device), k)


def similarity_mask(features: Tensor, k: int, pool: Literal["mean", "max"] = "mean") -> Tensor:
    """The ``k`` super-patches most similar to their image's prototype: top-k of ``m · f_iᵀ``, with m the
    super-patches pooled as the attribute scores are (mean, or the element-wise max with ``pool=max``, as the
    reference implementation does).

    ``features`` ``[B, n, F]``. Selection only: no gradient.
    """
    with torch.no_grad():
        features = features.float()
        prototype = features.amax(dim=1, keepdim=True) if pool == "max" else features.mean(dim=1, keepdim=True)
        return top_k_mask((features * prototype).sum(dim=-1), k)


def patch_targets(scores: Tensor, kept: Tensor, mode: Literal["hard", "soft"] = "hard") -> Tensor:
    """PatchCls targets ``[B, P]`` (probability of *unrelated*): ``hard`` 1 − kept, ``soft`` see module doc."""
    if mode == "hard":
        return (~kept).float()
    if mode == "soft":
        scores = scores.detach().float()
        low = scores.amin(dim=1, keepdim=True)
        span = scores.amax(dim=1, keepdim=True) - low
        normalised = torch.where(span > 0, (scores - low) / span.clamp_min(1e-12), torch.full_like(scores, 0.5))
        return 1.0 - normalised
    raise ValueError(f"unknown patch targets {mode!r}; valid: hard, soft")


def kept_indices(kept: Tensor, k: int) -> Tensor:
    """``[B, k]`` ascending indices of the True entries of a mask with exactly ``k`` per row.

    A stable sort instead of ``nonzero`` keeps it free of host synchronisation on accelerators.
    """
    return torch.argsort((~kept).to(torch.uint8), dim=1, stable=True)[:, :k]
