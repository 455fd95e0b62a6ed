"""Batches of cached region features for frozen-backbone models (``input_kind = "features"``).

The features come from :mod:`zslbench.data.feature_cache` (built once per backbone, transform and
image list); this module only walks them in the engine's batch order. Training never maps the
whole cache file: each batch reads just its rows (:meth:`~zslbench.data.feature_cache.FeatureCache.read`),
and the next batch is read by a background thread while the current one trains.

Example (a cache of 4 images × 2 regions × 3 channels, read in batches of two):
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> from zslbench.data.feature_cache import FEATURES_FILE, FeatureCache
    >>> folder = Path(tempfile.mkdtemp())
    >>> array = np.lib.format.open_memmap(folder / FEATURES_FILE, mode="w+", dtype=np.float16, shape=(4, 2, 3))
    >>> array[:] = 1; array.flush(); del array
    >>> labels = np.array([0, 0, 1, 1])
    >>> source = FeatureBatches(FeatureCache(folder, {}), np.arange(4), labels, labels, batch_size=2,
    ...                         shuffle=False, drop_last=False, balanced=False)
    >>> [tuple(batch["features"].shape) for batch in source]
    [(2, 2, 3), (2, 2, 3)]
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

import numpy as np
import torch

from zslbench.data.feature_cache import ExtractorSpec, FeatureCache, ensure_feature_cache
from zslbench.engine.run_data import loader_workers
from zslbench.engine.distributed import Dist, rank_slice
from zslbench.engine.sampling import Sampling, training_loop


class FeatureBatches:
    """Batches of cached region features, in the engine's batch-dict format.

    Yields ``{"features": float16 [B, R, C] (as cached: half the bytes to move; models convert on the
    device), "label": int64 global ids, "seen_label": int64 index into the seen classes (−1 unseen),
    "index": int64 image ids, "global_size": int, the global batch's size}``; with ``pin_memory`` the
    rows are read straight into pinned memory. ``generator`` (reseeded by the trainer
    every epoch) drives shuffling and the draws of ``sampling`` (:mod:`zslbench.engine.sampling`; without it
    ``shuffle`` or, with ``balanced``, class-balanced batches of ``min(C, B)`` classes).
    """

    def __init__(self, cache: FeatureCache, indices: np.ndarray, labels: np.ndarray, seen_index: np.ndarray,
                 batch_size: int, shuffle: bool, drop_last: bool, balanced: bool, pin_memory: bool = False,
                 sampling: Sampling | None = None):
        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seen_index = np.asarray(seen_index, dtype=np.int64)
        self.batch_size, self.shuffle, self.drop_last, self.balanced = batch_size, shuffle, drop_last, balanced
        self.pin_memory = pin_memory
        self.generator = torch.Generator()
        self.shard = Dist()  # set by the trainer: this rank's slice of every global batch
        self.sampling = sampling or Sampling("balanced" if balanced else "shuffle", shuffle=shuffle)

    def __len__(self) -> int:
        return self.sampling.count(len(self.indices), self.batch_size, self.drop_last)

    def _positions(self) -> Iterator[np.ndarray]:
        yield from self.sampling.batches(self.labels, self.batch_size, self.generator, self.drop_last)

    def _load(self, item: tuple[int, np.ndarray]) -> dict[str, Any]:
        total, positions = item
        rows = self.indices[positions]
        features = torch.empty((len(rows), *self.cache.shape[1:]), dtype=torch.float16, pin_memory=self.pin_memory)
        self.cache.read(rows, out=features.numpy())
        return {"features": features,
                "label": torch.from_numpy(self.labels[positions]),
                "seen_label": torch.from_numpy(self.seen_index[positions]),
                "index": torch.from_numpy(self.indices[positions]),
                "global_size": total}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # drawn on this thread, so the generator's sequence is fixed; every rank draws the global batches
        positions = ((len(p), p[rank_slice(len(p), self.shard)]) for p in self._positions())
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            try:
                first = next(positions, None)
                if first is None:
                    return
                pending = pool.submit(self._load, first)
                for following in positions:
                    current = pending.result()
                    pending = pool.submit(self._load, following)
                    yield current
                yield pending.result()
                pending = None
            finally:
                if pending is not None:
                    pending.cancel()


def feature_batches(cfg: Any, data: Any, indices: np.ndarray, train: bool, device: Any,
                    precision: str | None = None) -> FeatureBatches:
    """The engine's batch source for feature models: the cached features of ``indices``.

    The cache is built on first use (all images of the dataset, so every split shares it; under
    ``torchrun`` by all processes together, each extracting its share) and kept in ``data.extra``
    for the rest of the run. ``precision`` (the run's: ``bf16`` | ``fp32``; ``None`` = ``train.amp`` on
    ``device``) is the extraction's too.
    """
    from zslbench.engine.device import uses_bf16

    # the model's own input size (not data.image_size): the model sizes its layers from the same spec
    spec = ExtractorSpec.from_model_config(cfg.model)
    device = torch.device(device)
    precision = "bf16" if uses_bf16(device, precision or cfg.train.amp) else "fp32"
    store = data.extra.setdefault("feature_caches", {})
    cache = store.get((spec, precision))
    if cache is None:
        workers = loader_workers(cfg.data.num_workers, data.split.num_images)
        cache = ensure_feature_cache(data.split, spec, data.image_root, device,
                                     batch_size=int(getattr(cfg.model, "extract_batch_size", 64)),
                                     num_workers=workers, precision=precision, shards=_RankShards())
        store[(spec, precision)] = cache
    indices = np.asarray(indices, dtype=np.int64)
    labels = np.asarray(data.split.labels)[indices]
    batch_size = cfg.train.batch_size if train else cfg.eval.batch_size
    drop_last = train and cfg.train.drop_last and len(indices) >= batch_size
    sampling = Sampling.for_training(cfg.train, training_loop(cfg).shuffle) if train else Sampling(shuffle=False)
    return FeatureBatches(cache, indices, labels, data.info.seen_index()[labels], batch_size, shuffle=train,
                          drop_last=drop_last, balanced=False, pin_memory=device.type == "cuda", sampling=sampling)


class _RankShards:
    """This process's rank in the job, and the collectives a shared cache build needs."""

    def __init__(self) -> None:
        from zslbench.engine import distributed

        self._distributed = distributed
        me = distributed.current()
        self.rank, self.world = me.rank, me.world

    def broadcast(self, value: Any) -> Any:
        return self._distributed.broadcast(value)

    def barrier(self) -> None:
        self._distributed.barrier()
