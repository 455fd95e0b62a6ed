"""Super-patches: 2×2 blocks of neighbouring ViT patches (SVIP.md §2).

A G×G patch grid (tokens in row-major order) becomes P = (G/2)² super-patches, themselves in
row-major order over the (G/2)×(G/2) block grid. **Within-block order**: the four patch vectors of
a block are concatenated as top-left, top-right, bottom-left, bottom-right, so super-patch ``p`` at
block (i, j) is ``[v(2i, 2j), v(2i, 2j+1), v(2i+1, 2j), v(2i+1, 2j+1)]`` → one 4D vector.

Example:
    >>> import torch
    >>> v = torch.arange(16.).reshape(1, 16, 1)  # a 4×4 grid, D = 1, values = token index
    >>> group(v, 4)[0].tolist()
    [[0.0, 1.0, 4.0, 5.0], [2.0, 3.0, 6.0, 7.0], [8.0, 9.0, 12.0, 13.0], [10.0, 11.0, 14.0, 15.0]]
    >>> torch.equal(ungroup(group(v, 4), 4), v)
    True
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def num_superpatches(grid: int) -> int:
    """P = (G/2)² for an even G."""
    if grid % 2:
        raise ValueError(f"super-patches need an even patch grid, got {grid}")
    return (grid // 2) ** 2


def group(tokens: Tensor, grid: int) -> Tensor:
    """``[B, G², D]`` patch tokens (row-major) → ``[B, P, 4D]`` super-patches (order: module docstring)."""
    batch, count, dim = tokens.shape
    if count != grid * grid or grid % 2:
        raise ValueError(f"expected {grid}×{grid} = {grid * grid} tokens on an even grid, got {count}")
    half = grid // 2
    blocks = tokens.reshape(batch, half, 2, half, 2, dim).permute(0, 1, 3, 2, 4, 5)
    return blocks.reshape(batch, half * half, 4 * dim)


def ungroup(superpatches: Tensor, grid: int) -> Tensor:
    """Exact inverse of :func:`group`: ``[B, P, 4D]`` → ``[B, G², D]`` in row-major token order."""
    batch, count, width = superpatches.shape
    half = grid // 2
    if count != half * half or width % 4:
        raise ValueError(f"expected {half * half} super-patches of width 4D, got {count} of width {width}")
    blocks = superpatches.reshape(batch, half, half, 2, 2, width // 4).permute(0, 1, 3, 2, 4, 5)
    return blocks.reshape(batch, grid * grid, width // 4)


def superpatch_token_index(grid: int, device: torch.device | None = None) -> Tensor:
    """``[P, 4]`` row-major token indices of each super-patch, in within-block order.

    >>> superpatch_token_index(4)[1].tolist()
    [2, 3, 6, 7]
    """
    index = torch.arange(grid * grid, device=device).reshape(1, grid * grid, 1)
    return group(index, grid)[0]


def pool_superpatches(values: Tensor, mask: Tensor | None = None, mode: Literal["mean", "max"] = "mean") -> Tensor:
    """Pool ``[B, n, A]`` over super-patches → ``[B, A]``; ``mask`` [B, n] bool picks the pooled set.

    >>> values = torch.tensor([[[1.0], [3.0], [8.0]]])
    >>> pool_superpatches(values, torch.tensor([[True, True, False]])).tolist()
    [[2.0]]
    >>> pool_superpatches(values, torch.tensor([[True, True, False]]), "max").tolist()
    [[3.0]]
    """
    if mode not in ("mean", "max"):
        raise ValueError(f"unknown pooling {mode!r}; valid: mean, max")
    if mask is None:
        return values.mean(dim=1) if mode == "mean" else values.amax(dim=1)
    weights = mask.unsqueeze(-1)
    if mode == "mean":
        return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)
    lowest = torch.finfo(values.dtype).min
    return values.masked_fill(~weights, lowest).amax(dim=1)
