"""Part masks of the synthetic benchmark → patch and super-patch relevance, and selection quality.

A mask is a single-channel uint8 image at pixel resolution: 0 = background or clutter, k = part k
(1-based, the order of ``parts`` in ``synth_meta.json``). A model with patch size ``p`` on an
``S``-pixel input sees a ``G × G`` patch grid (``G = S / p``); SVIP groups 2×2 neighbouring patches
into ``P = (G/2)²`` super-patches, numbered row-major: super-patch ``(r, c)`` — index ``r·G/2 + c`` —
covers patches ``(2r..2r+1, 2c..2c+1)`` (SVIP.md §2). This module measures which super-patches
show the creature, and how well a model's *kept* super-patches match them. Pure numpy.

Example:
    >>> mask = np.zeros((4, 4), dtype=np.uint8); mask[:2, :2] = 1
    >>> superpatch_relevance(mask, patch_size=1).tolist()
    [1.0, 0.0, 0.0, 0.0]
    >>> scores = selection_scores(np.array([[True, True, False, False]]), np.array([[True, False, False, False]]))
    >>> scores["precision"], scores["recall"], scores["iou"]
    (0.5, 1.0, 0.5)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zslbench.core.errors import DataError


def load_mask(path: str | Path) -> np.ndarray:
    """A part mask as uint8 [H, W]; a DataError (one line) if it is missing or not single-channel."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I", "I;16"):
                raise DataError(f"mask {path} has mode {image.mode}, not a single-channel label image; "
                                "regenerate the dataset with `zslbench data synth --force`")
            return np.asarray(image, dtype=np.uint8) if image.mode in ("L", "P") \
                else np.asarray(image).astype(np.uint8)
    except FileNotFoundError:
        raise DataError(f"mask {path} is missing; regenerate the dataset with `zslbench data synth --force`") from None
    except OSError as exc:
        raise DataError(f"mask {path} cannot be decoded ({exc}); regenerate the dataset with "
                        "`zslbench data synth --force`") from None


def resize_nearest(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a square label mask to ``size × size`` (labels are never blended).

    >>> resize_nearest(np.array([[0, 1], [2, 3]], dtype=np.uint8), 4).tolist()[0]
    [0, 0, 1, 1]
    """
    height, width = mask.shape
    rows = np.minimum((np.arange(size) + 0.5) * height / size, height - 1).astype(np.int64)
    cols = np.minimum((np.arange(size) + 0.5) * width / size, width - 1).astype(np.int64)
    return mask[rows[:, None], cols[None, :]]


def patch_relevance(mask: np.ndarray, patch_size: int, image_size: int | None = None) -> np.ndarray:
    """Fraction of creature pixels (mask > 0) in each patch: float [G, G].

    ``image_size`` is the model's input size; when it differs from the mask's, the mask is
    resized (nearest) first so the patch grid is the model's.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"a mask must be a square 2-D array, got shape {mask.shape}")
    if image_size is not None and image_size != mask.shape[0]:
        mask = resize_nearest(mask, image_size)
    size = mask.shape[0]
    if patch_size < 1 or size % patch_size:
        raise ValueError(f"patch size {patch_size} does not divide the mask size {size}")
    grid = size // patch_size
    creature = (mask > 0).astype(np.float64)
    return creature.reshape(grid, patch_size, grid, patch_size).mean(axis=(1, 3))


def superpatch_relevance(mask: np.ndarray, patch_size: int, image_size: int | None = None) -> np.ndarray:
    """Fraction of creature pixels in each 2×2-patch super-patch, row-major: float [P], P = (G/2)²."""
    patches = patch_relevance(mask, patch_size, image_size)
    grid = patches.shape[0]
    if grid % 2:
        raise ValueError(f"super-patches need an even patch grid, got {grid}×{grid}")
    half = grid // 2
    return patches.reshape(half, 2, half, 2).mean(axis=(1, 3)).reshape(-1)


def creature_superpatches(mask: np.ndarray, patch_size: int, threshold: float = 0.0,
                          image_size: int | None = None) -> np.ndarray:
    """Super-patches whose creature-pixel fraction exceeds ``threshold``: bool [P]."""
    return superpatch_relevance(mask, patch_size, image_size) > threshold


def selection_scores(kept: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """Precision, recall and IoU of kept super-patches against the creature's, bool [B, P] each.

    ``precision``/``recall``/``iou`` are micro (pooled over the batch); ``*_per_image`` are the
    means of the per-image scores, where 0/0 counts as 1 when both sets are empty and 0 otherwise.
    ``kept_mean``/``relevant_mean`` are the mean numbers of super-patches per image.
    """
    kept = np.asarray(kept, dtype=bool)
    relevant = np.asarray(relevant, dtype=bool)
    if kept.shape != relevant.shape or kept.ndim != 2:
        raise ValueError(f"kept and relevant must both be [B, P], got {kept.shape} and {relevant.shape}")
    both = (kept & relevant).sum(axis=1)
    either = (kept | relevant).sum(axis=1)
    n_kept, n_relevant = kept.sum(axis=1), relevant.sum(axis=1)
    empty = either == 0
    if len(kept) and not either.any():  # nothing kept and nothing to find: perfect agreement
        return {**{k: 1.0 for k in ("precision", "recall", "iou", "precision_per_image", "recall_per_image",
                                     "iou_per_image")}, "kept_mean": 0.0, "relevant_mean": 0.0}
    return {
        "precision": _ratio(both.sum(), n_kept.sum()),
        "recall": _ratio(both.sum(), n_relevant.sum()),
        "iou": _ratio(both.sum(), either.sum()),
        "precision_per_image": float(np.mean(_ratios(both, n_kept, empty))) if len(kept) else 0.0,
        "recall_per_image": float(np.mean(_ratios(both, n_relevant, empty))) if len(kept) else 0.0,
        "iou_per_image": float(np.mean(_ratios(both, either, empty))) if len(kept) else 0.0,
        "kept_mean": float(n_kept.mean()) if len(kept) else 0.0,
        "relevant_mean": float(n_relevant.mean()) if len(kept) else 0.0,
    }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _ratios(numerator: np.ndarray, denominator: np.ndarray, empty: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, numerator / safe, np.where(empty, 1.0, 0.0))
