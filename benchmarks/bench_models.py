"""Models, dataset infos and single training/inference steps shared by the benchmarks.

Example:
    >>> info = cub_like_info()
    >>> info.num_attributes, info.num_classes, len(info.seen_classes), len(info.attribute_groups)
    (312, 200, 150, 28)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

#: CUB's class-level geometry (PROTOCOL.md §1): 312 attributes in 28 groups, 150 seen + 50 unseen classes.
CUB_ATTRIBUTES, CUB_CLASSES, CUB_SEEN, CUB_GROUPS, WORD_DIM = 312, 200, 150, 28, 300


def cub_like_info(seed: int = 0):
    """A random CUB-shaped :class:`~zslbench.catalogue.DatasetInfo` (L2-normalised class attributes,
    300-d word vectors, 28 contiguous attribute groups)."""
    from zslbench.catalogue import DatasetInfo

    rng = np.random.default_rng(seed)
    attributes = rng.random((CUB_CLASSES, CUB_ATTRIBUTES)).astype(np.float32)
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True) + 1e-5
    bounds = np.linspace(0, CUB_ATTRIBUTES, CUB_GROUPS + 1).astype(int)
    groups = [list(range(start, stop)) for start, stop in zip(bounds[:-1], bounds[1:])]
    return DatasetInfo(
        name="cub-like",
        class_attributes=attributes,
        seen_classes=np.arange(CUB_SEEN, dtype=np.int64),
        unseen_classes=np.arange(CUB_SEEN, CUB_CLASSES, dtype=np.int64),
        word_vectors=rng.standard_normal((CUB_ATTRIBUTES, WORD_DIM)).astype(np.float32),
        attribute_names=[f"attribute {i}" for i in range(CUB_ATTRIBUTES)],
        attribute_groups=groups,
    )


def image_batch(batch_size: int, image_size: int, num_seen: int, seed: int = 0) -> dict[str, Any]:
    """A random normalised image batch with seen-class labels (global id = seen index here)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_seen, (batch_size,), generator=generator)
    return {"image": torch.randn(batch_size, 3, image_size, image_size, generator=generator),
            "label": labels, "seen_label": labels.clone()}


def training_step(model, optimizer, grad_clip: float = 0.0) -> Callable[[dict[str, Any]], float]:
    """One engine-like step on a batch: forward, summed weighted losses, backward, (clip), update."""
    import torch

    def step(batch: dict[str, Any]) -> float:
        model.train()
        output = model(batch)
        loss = sum(model.losses(output, batch).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], grad_clip)
        optimizer.step()
        return float(loss.detach())

    return step


def inference_step(model, class_attributes: np.ndarray) -> Callable[[dict[str, Any]], Any]:
    """One evaluation step as the trainer's: eval mode, no_grad, forward, class scores over every class."""
    import torch

    class_attributes = torch.as_tensor(class_attributes, dtype=torch.float32)

    def step(batch: dict[str, Any]) -> Any:
        model.eval()
        with torch.no_grad():
            output = model(batch)
            return model.class_scores(output, class_attributes)

    return step
