"""Attention aggregated over all layers → per-patch relevance scores (SVIP.md §3).

Two forms, both returning the CLS row over the patches, ``[B, N − 1]``:

* ``reference`` (default; the reference implementation's attention rollout):
  Â_l = rownorm(mean_heads(attn_l) + I), R = Â_L ··· Â_2 · Â_1, score = R[:, 0, 1:];
* ``paper`` (the paper's text): T^l = sum_heads(attn_l), W¹ = T¹, W^l = W^{l−1} + W^{l−1}·T^l,
  score = W^L[:, 0, 1:].

Only the CLS row is needed, so neither form multiplies full N×N matrices: the reference form keeps
the per-layer Â_l (1/H of the attention maps) and multiplies a row vector from the left; the paper
form carries the CLS row forward layer by layer. All math is float32 with autocast disabled.

Example (a 2-layer model whose attention is uniform scores every patch alike):
    >>> import torch
    >>> uniform = torch.full((1, 2, 3, 3), 1 / 3)
    >>> scores = rollout_reference([uniform, uniform])
    >>> scores.shape, torch.allclose(scores[0, 0], scores[0, 1])
    (torch.Size([1, 2]), True)
"""

from __future__ import annotations

from typing import Iterable, Literal

import torch
from torch import Tensor

RolloutKind = Literal["reference", "paper"]


class AttentionRollout:
    """Accumulates one layer's attention ``[B, H, N, N]`` at a time; :meth:`scores` gives ``[B, N − 1]``."""

    def __init__(self, kind: RolloutKind = "reference"):
        if kind not in ("reference", "paper"):
            raise ValueError(f"unknown rollout {kind!r}; valid: reference, paper")
        self.kind = kind
        self._layers: list[Tensor] = []  # reference: the Â_l
        self._row: Tensor | None = None  # paper: the CLS row of W^l

    def add(self, attention: Tensor) -> None:
        """Fold in the next layer's post-softmax attention (first layer first)."""
        with _full_precision(attention):
            attention = attention.detach().float()
            if self.kind == "reference":
                mixed = attention.mean(dim=1)
                mixed = mixed + torch.eye(mixed.shape[-1], device=mixed.device, dtype=mixed.dtype)
                self._layers.append(mixed / mixed.sum(dim=-1, keepdim=True))
            else:
                summed = attention.sum(dim=1)
                row = summed[:, :1, :]
                self._row = row if self._row is None else self._row + self._row @ summed

    def scores(self) -> Tensor:
        """The CLS row over the patches (the CLS column itself dropped), ``[B, N − 1]``."""
        if self.kind == "paper":
            if self._row is None:
                raise ValueError("no attention was added")
            return self._row[:, 0, 1:]
        if not self._layers:
            raise ValueError("no attention was added")
        with _full_precision(self._layers[-1]):
            row = self._layers[-1][:, :1, :]
            for layer in reversed(self._layers[:-1]):
                row = row @ layer
        return row[:, 0, 1:]


def rollout_reference(attentions: Iterable[Tensor]) -> Tensor:
    """Attention rollout of the reference implementation: ``(Â_L ··· Â_1)[:, 0, 1:]``."""
    return _fold(attentions, "reference")


def rollout_paper(attentions: Iterable[Tensor]) -> Tensor:
    """The paper's recursion W^l = W^{l−1} + W^{l−1}·T^l with heads summed: ``W^L[:, 0, 1:]``."""
    return _fold(attentions, "paper")


def _fold(attentions: Iterable[Tensor], kind: RolloutKind) -> Tensor:
    rollout = AttentionRollout(kind)
    for attention in attentions:
        rollout.add(attention)
    return rollout.scores()


def _full_precision(like: Tensor):
    return torch.autocast(device_type=like.device.type, enabled=False)
