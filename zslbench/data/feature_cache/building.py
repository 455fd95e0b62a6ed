"""Building a feature cache: run the frozen backbone once over every image and store its regions.

Each image's last feature map becomes ``[R, C]`` region vectors (CNN: the ``h·w`` cells of the
map; ViT: the patch tokens), written in image order into ``features.npy`` through
:func:`numpy.lib.format.open_memmap`. The folder is built beside its final place and renamed into
place once ``meta.json`` (with ``"complete": true``) is written
(:func:`zslbench.core.files.build_in_sibling`): an interrupted build leaves nothing that looks
complete, and its folder is removed by the next build.

Several processes (``torchrun``) build one cache together (:class:`Shards`): rank 0 creates the
file once the first batch shows the geometry and tells the others where it is, every rank extracts
its contiguous share of the images into it, and rank 0 marks it complete and renames it into place
— one copy on disk, each image extracted once, instead of one whole cache per process.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from zslbench.core.errors import DataError
from zslbench.core.files import build_in_sibling
from zslbench.data.feature_cache.key import (FEATURES_FILE, META_FILE, ExtractorSpec, cache_fields, cache_key,
                                             cache_root, extraction_transform)
from zslbench.data.feature_cache.reading import FeatureCache, is_complete, open_cache

Extractor = Callable[[Any], Any]  # images [B, 3, s, s] → region map [B, C, h, w]


class Shards(Protocol):
    """The processes that build a cache together: this one is ``rank`` of ``world``."""

    rank: int
    world: int

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""

    def barrier(self) -> None:
        """Wait until every rank is here."""


def share(n: int, rank: int, world: int) -> np.ndarray:
    """The contiguous rows ``rank`` of ``world`` extracts (sizes differ by at most one; rank 0's is never
    smaller, so it sees the first image and with it the geometry).

    >>> [share(5, r, 2).tolist() for r in range(2)]
    [[0, 1, 2], [3, 4]]
    """
    return np.array_split(np.arange(n), world)[rank]


def ensure_feature_cache(split: Any, spec: ExtractorSpec, image_root: str | Path | None = None,
                         device: Any = "cpu", batch_size: int = 64, num_workers: int = 0,
                         extractor: Extractor | None = None, progress: bool = True,
                         root: str | Path | None = None, precision: str = "fp32",
                         shards: Shards | None = None) -> FeatureCache:
    """The feature cache of every image of ``split`` under ``spec``: reused when complete, else built.

    ``precision``: ``fp32`` or ``bf16`` (autocast) extraction — part of the key. ``shards``: the
    processes building it together (every one of them calls this). ``extractor`` (images →
    ``[B, C, h, w]``) replaces the backbone ``spec`` names — for tests; the key still comes from
    ``spec``. ``root`` overrides :func:`~zslbench.data.feature_cache.key.cache_root`.
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"unknown extraction precision {precision!r}; valid: fp32, bf16")
    transform, description = extraction_transform(split.dataset, spec.img_size)
    fields = cache_fields(spec, description, split, precision)
    key = cache_key(fields)
    base = Path(root) if root is not None else cache_root(split.directory)
    final = base / key
    world = shards.world if shards is not None else 1
    rank = shards.rank if shards is not None else 0
    job = _Job(split, spec, transform, fields, key, image_root, device, batch_size, num_workers, extractor,
               progress and rank == 0, precision)
    if world == 1:
        cache = open_cache(final, fields)
        if cache is None:
            base.mkdir(parents=True, exist_ok=True)
            # another process that finished the same cache meanwhile wins; an invalid folder there is replaced
            build_in_sibling(final, lambda folder: job.build(folder, share(split.num_images, 0, 1)),
                             keep_existing=lambda existing: is_complete(existing, fields))
    elif rank == 0:
        _lead(job, final, shards)
    else:
        _follow(job, shards)
    cache = open_cache(final, fields)
    if cache is None:  # pragma: no cover - only if the folder vanished between rename and open
        raise DataError(f"the feature cache {final} could not be reopened after building; delete it and retry")
    return cache


def _lead(job: "_Job", final: Path, shards: Shards) -> None:
    """Rank 0 of a shared build: the folder, the file, the meta file and the rename are its own."""
    started: list[bool] = []

    def build(folder: Path) -> None:
        started.append(True)
        job.build(folder, share(job.split.num_images, 0, shards.world), announce=shards.broadcast,
                  before_meta=shards.barrier)

    if open_cache(final, job.fields) is None:
        final.parent.mkdir(parents=True, exist_ok=True)
        build_in_sibling(final, build, keep_existing=lambda existing: is_complete(existing, job.fields))
    if not started:
        shards.broadcast(None)  # nothing to build: the others go straight to the cache
    shards.barrier()  # the cache is in place


def _follow(job: "_Job", shards: Shards) -> None:
    """Another rank of a shared build: extract this rank's share into the file rank 0 created."""
    plan = shards.broadcast(None)
    if plan is not None:
        folder, shape = plan
        job.write_rows(Path(folder), tuple(shape), share(job.split.num_images, shards.rank, shards.world))
        shards.barrier()  # every share written (rank 0 waits here before the meta file)
    shards.barrier()  # the cache is in place


class _Job:
    """One extraction: the images, the backbone, the precision; :meth:`build` a whole cache folder,
    :meth:`write_rows` a share of one."""

    def __init__(self, split, spec: ExtractorSpec, transform, fields, key: str, image_root, device,
                 batch_size: int, num_workers: int, extractor: Extractor | None, progress: bool, precision: str):
        self.split, self.spec, self.transform, self.fields, self.key = split, spec, transform, fields, key
        self.image_root, self.batch_size, self.num_workers = image_root, batch_size, num_workers
        self.extractor, self.progress, self.precision = extractor, progress, precision
        self.device = device

    def build(self, folder: Path, rows: np.ndarray, announce: Callable[[Any], Any] | None = None,
              before_meta: Callable[[], None] | None = None) -> dict[str, Any]:
        """Create ``features.npy`` in ``folder`` (its geometry from the first batch), fill ``rows``, and
        — once ``before_meta`` says every other share is written — the meta file."""
        started = time.perf_counter()
        array, grid = None, (0, 0)
        for start, regions in self._extract(rows):
            if array is None:  # the geometry is known from the first batch
                grid, channels = (int(regions.shape[2]), int(regions.shape[3])), int(regions.shape[1])
                array = self._create(folder, grid, channels)
                if announce is not None:
                    announce((str(folder), list(array.shape)))
                    announce = None
            array[start:start + len(regions)] = _rows(regions)
        if array is None:
            raise DataError(f"dataset {self.split.dataset} has no images to extract features from")
        array.flush()
        shape = list(array.shape)
        del array
        if before_meta is not None:
            before_meta()
        meta = {"complete": True, "key": self.key, "fields": self.fields, "shape": shape, "grid": list(grid),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.perf_counter() - started, 3)}
        # the meta file last: its "complete" flag is what makes the folder a cache
        (folder / META_FILE).write_text(json.dumps(meta, indent=1))
        return meta

    def write_rows(self, folder: Path, shape: tuple[int, ...], rows: np.ndarray) -> None:
        """Fill ``rows`` of the ``features.npy`` another rank created in ``folder``."""
        array = np.lib.format.open_memmap(folder / FEATURES_FILE, mode="r+")
        if tuple(array.shape) != tuple(shape):
            raise DataError(f"{folder / FEATURES_FILE} has shape {array.shape}, not {tuple(shape)}; delete it and retry")
        for start, regions in self._extract(rows):
            array[start:start + len(regions)] = _rows(regions)
        array.flush()
        del array

    def _create(self, folder: Path, grid: tuple[int, int], channels: int) -> np.memmap:
        array = np.lib.format.open_memmap(folder / FEATURES_FILE, mode="w+", dtype=np.float16,
                                          shape=(self.split.num_images, grid[0] * grid[1], channels))
        reserve_space(folder / FEATURES_FILE)
        return array

    def _extract(self, rows: np.ndarray):
        """(first row, region map [B, C, h, w]) for consecutive batches of ``rows``."""
        import torch
        from torch.utils.data import DataLoader

        from zslbench.data.images import ImageDataset

        if len(rows) == 0:
            return
        device = torch.device(self.device)
        extractor = self._extractor(device)
        dataset = ImageDataset(self.split, np.asarray(rows), self.transform, self.image_root)
        loader = DataLoader(dataset, batch_size=max(1, self.batch_size), shuffle=False, num_workers=self.num_workers,
                            pin_memory=device.type == "cuda")
        position = int(rows[0])
        with _progress_bar(self.progress, f"extracting {self.spec.backbone} features", len(loader)) as advance:
            for batch in loader:
                images = batch["image"].to(device, non_blocking=True)
                with torch.no_grad(), _autocast(device, self.precision):
                    regions = extractor(images)
                yield position, regions
                position += int(regions.shape[0])
                advance()

    def _extractor(self, device) -> Extractor:
        if self.extractor is not None:
            return self.extractor
        if not hasattr(self, "_backbone"):
            from zslbench.backbones.cnn import region_map

            backbone = self.spec.build().to(device)
            self._backbone = lambda images: region_map(backbone, images)  # noqa: E731
        return self._backbone


def reserve_space(path: Path) -> None:
    """Allocate ``path``'s blocks now: a memory-mapped file is created sparse, and a write that finds the disk
    full later kills the process with SIGBUS instead of raising. A full disk is one line here instead."""
    import errno
    import os
    import shutil

    size = path.stat().st_size
    try:
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, size)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free  # a file system that cannot allocate ahead: compare
            if free >= size:
                return
    except AttributeError:  # pragma: no cover - no posix_fallocate on this platform
        return
    raise DataError(f"the feature cache needs {size / 2**30:.1f} GiB in {path.parent.parent} and the disk has less "
                    "free; free space there (or point $ZSLBENCH_CACHE at a larger disk when the dataset folder is "
                    "read-only)")


def _rows(regions) -> np.ndarray:
    """[B, C, h, w] → [B, h·w, C] float16 in host memory."""
    import torch

    return regions.flatten(2).transpose(1, 2).to("cpu", torch.float16).numpy()


def _autocast(device, precision: str):
    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _progress_bar:
    """A transient rich progress bar (silently absent when another live display is running)."""

    def __init__(self, enabled: bool, description: str, total: int):
        self.enabled, self.description, self.total = enabled, description, total
        self.progress = None

    def __enter__(self) -> Callable[[], None]:
        if self.enabled:
            from rich.console import Console
            from rich.errors import LiveError
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            # on stderr: stdout may carry `--json -` output
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), transient=True, console=Console(stderr=True))
            try:
                progress.start()
                self.progress = progress
                task = progress.add_task(self.description, total=self.total)
                return lambda: progress.advance(task)
            except LiveError:
                self.progress = None
        return lambda: None

    def __exit__(self, *exc) -> bool:
        if self.progress is not None:
            self.progress.stop()
        return False
