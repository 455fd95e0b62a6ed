"""Region features of a frozen backbone, extracted once into a float16 cache file and read batch by batch.

Frozen-backbone models (``input_kind = "features"``, e.g. ``transzero``) never see images during
training: :func:`ensure_feature_cache` runs the backbone once over every image of the dataset and
stores the last feature map of each as ``[R, C]`` region vectors (CNN: the ``h·w`` cells of the last
map; ViT: the patch tokens) in ``features.npy`` — a ``.npy`` file of shape ``[N, R, C]``, float16,
written through :func:`numpy.lib.format.open_memmap` — next to a ``meta.json``.

Where: ``<dataset dir>/.cache/features/<key>/``; when the dataset directory is not writable,
``$ZSLBENCH_CACHE/features/<key>/`` (default ``~/.cache/zslbench``).

Key: a hash of everything that changes the numbers — the backbone name and output stride, its
weights (``sha256`` of the weights file, ``random:<seed>`` or the hub tag), the transform
description, the input size, and the image list with its labels (plus the synthetic generator's
version and seed) — so runs, seeds and sweeps share one cache, and any change builds a new one.
Images replaced in place under the same file names are not detected: delete the cache folder.

Safety: a cache is built in a temporary sibling folder and renamed into place once
``meta.json`` (with ``"complete": true``) is written; an interrupted build leaves nothing that
looks complete, and is cleaned up on the next build.

Memory: training never maps the whole file. Each batch reads just its rows (sorted, contiguous runs
coalesced) with positional reads into a float16 buffer and converts that batch to float32, so a
run over a 9 GiB cache stays far below the cache's size in resident memory — the operating system's
page cache, not the process, holds whatever fits.

Example (a tiny cache of 3 images × 4 regions × 2 channels):
    >>> import tempfile, numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> array = np.lib.format.open_memmap(folder / FEATURES_FILE, mode="w+", dtype=np.float16, shape=(3, 4, 2))
    >>> array[:] = np.arange(24).reshape(3, 4, 2); array.flush(); del array
    >>> cache = FeatureCache(folder, {"grid": [2, 2]})
    >>> cache.read(np.array([2, 0])).shape, float(cache.read(np.array([2]))[0, 0, 0])
    ((2, 4, 2), 16.0)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from zslbench.engine.distributed import Dist, rank_slice
from zslbench.core.errors import DataError

CACHE_VERSION = 1
FEATURES_FILE = "features.npy"
META_FILE = "meta.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- what is cached
@dataclass(frozen=True)
class ExtractorSpec:
    """The frozen backbone whose features are cached (the model config's *extractor* fields)."""

    backbone: str
    pretrained: str = ""  # "" random init from ``seed`` | weights file | "hub"
    seed: int = 0
    img_size: int = 448
    output_stride: int = 0

    @classmethod
    def from_model_config(cls, model_cfg: Any, img_size: int | None = None) -> "ExtractorSpec":
        return cls(backbone=model_cfg.backbone, pretrained=getattr(model_cfg, "pretrained", ""),
                   seed=int(getattr(model_cfg, "backbone_seed", 0)), img_size=int(img_size or model_cfg.img_size),
                   output_stride=int(getattr(model_cfg, "output_stride", 0)))

    def weights_id(self) -> str:
        from zslbench.backbones.cnn import weights_identity

        return weights_identity(self.pretrained, self.backbone, self.seed)

    def build(self):
        """The backbone, in eval mode (its weights are what :meth:`weights_id` names)."""
        from zslbench.backbones.cnn import create_backbone

        return create_backbone(self.backbone, self.pretrained, img_size=self.img_size,
                               output_stride=self.output_stride, seed=self.seed).eval()


def extraction_transform(dataset: str, size: int):
    """The fixed (augmentation-free) transform of the cached images and its description.

    Real datasets: Resize(s) (shorter side) → CenterCrop(s), as TransZero at s = 448; synthetic
    images are generated square, so only a resize when the size differs. Then ImageNet mean/std.
    """
    from torchvision import transforms as T

    from zslbench.data.images import _ResizeIfNeeded
    from zslbench.data.xlsa17 import is_synthetic

    steps = [_ResizeIfNeeded(size)] if is_synthetic(dataset) else [T.Resize(size), T.CenterCrop(size)]
    transform = T.Compose([*steps, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return transform, repr(transform)


def image_list_fingerprint(split: Any) -> str:
    """sha256 over the image paths and labels (and the synthetic generator's identity when present)."""
    digest = hashlib.sha256()
    digest.update("\n".join(split.image_files).encode())
    digest.update(np.ascontiguousarray(split.labels, dtype="<i8").tobytes())
    synth_meta = Path(split.directory) / "synth_meta.json"
    if synth_meta.is_file():  # regenerated images keep their names: the generator identity tells them apart
        try:
            meta = json.loads(synth_meta.read_text())
            digest.update(json.dumps({k: meta.get(k) for k in ("version", "preset", "seed", "params")},
                                     sort_keys=True).encode())
        except (OSError, ValueError):
            pass
    return digest.hexdigest()


def cache_fields(spec: ExtractorSpec, transform_description: str, split: Any) -> dict[str, Any]:
    """Every input of the cache key, as stored in ``meta.json``."""
    return {
        "version": CACHE_VERSION,
        "backbone": spec.backbone,
        "weights": spec.weights_id(),
        "output_stride": spec.output_stride,
        "input_size": spec.img_size,
        "transform": transform_description,
        "images": image_list_fingerprint(split),
        "num_images": int(split.num_images),
        "dtype": "float16",
    }


def cache_key(fields: dict[str, Any]) -> str:
    """A short stable hash of :func:`cache_fields`.

    >>> len(cache_key({"backbone": "resnet18"}))
    20
    """
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def cache_root(dataset_dir: str | Path) -> Path:
    """``<dataset dir>/.cache/features``, or ``$ZSLBENCH_CACHE`` (``~/.cache/zslbench``) ``/features``."""
    preferred = Path(dataset_dir) / ".cache" / "features"
    if _writable(preferred):
        return preferred
    fallback = Path(os.environ.get("ZSLBENCH_CACHE") or Path.home() / ".cache" / "zslbench").expanduser() / "features"
    if _writable(fallback):
        return fallback
    raise DataError(f"no writable place for the feature cache ({preferred} and {fallback} are read-only); "
                    "set $ZSLBENCH_CACHE to a writable folder")


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK | os.X_OK)


# --------------------------------------------------------------------------- a complete cache
class FeatureCache:
    """A complete cache folder: ``features.npy`` [N, R, C] float16 and its ``meta.json``."""

    def __init__(self, directory: str | Path, meta: dict[str, Any]):
        self.directory = Path(directory)
        self.meta = meta
        self.path = self.directory / FEATURES_FILE
        with open(self.path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(handle)
            self.offset = handle.tell()
        if len(shape) != 3 or fortran or np.dtype(dtype) != np.float16:
            raise DataError(f"{self.path} is not a C-ordered float16 [N, R, C] array; delete {self.directory}")
        self.shape: tuple[int, int, int] = tuple(int(s) for s in shape)  # type: ignore[assignment]
        self.row_bytes = self.shape[1] * self.shape[2] * 2
        if self.path.stat().st_size < self.offset + self.shape[0] * self.row_bytes:
            raise DataError(f"{self.path} is truncated; delete {self.directory} to rebuild it")
        self._lock = threading.Lock()
        self._file = open(self.path, "rb", buffering=0)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the feature map the regions come from."""
        h, w = self.meta.get("grid", (0, 0))
        return int(h), int(w)

    def memmap(self) -> np.memmap:
        """The whole array, memory-mapped read-only (for inspection; training uses :meth:`read`)."""
        return np.load(self.path, mmap_mode="r")

    def read(self, indices: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """Rows ``indices`` (any order, repeats allowed) as a new ``[len, R, C]`` array of ``dtype``.

        Reads each distinct row once, in file order, merging consecutive rows into one read.
        """
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if indices.size and (indices.min() < 0 or indices.max() >= self.shape[0]):
            raise IndexError(f"feature rows must lie in 0..{self.shape[0] - 1}")
        unique, inverse = np.unique(indices, return_inverse=True)
        buffer = np.empty((len(unique), *self.shape[1:]), dtype=np.float16)
        flat = buffer.reshape(len(unique), -1).view(np.uint8)
        if len(unique):
            breaks = np.flatnonzero(np.diff(unique) != 1) + 1
            for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(unique)]):
                self._read_into(flat[start:stop], int(unique[start]))
        ordered = buffer if np.array_equal(unique, indices) else buffer[inverse.ravel()]
        return ordered.astype(dtype, copy=False)

    def _read_into(self, target: np.ndarray, first_row: int) -> None:
        view = memoryview(target).cast("B")
        position, done = self.offset + first_row * self.row_bytes, 0
        while done < len(view):
            if hasattr(os, "preadv"):  # positional reads: thread-safe, no shared file offset
                got = os.preadv(self._file.fileno(), [view[done:]], position + done)
            else:
                with self._lock:
                    self._file.seek(position + done)
                    got = self._file.readinto(view[done:])
            if not got:
                raise DataError(f"{self.path} ended early; delete {self.directory} to rebuild it")
            done += got

    def close(self) -> None:
        self._file.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self._file.close()
        except Exception:
            pass


def open_cache(directory: Path, fields: dict[str, Any]) -> FeatureCache | None:
    """The cache in ``directory`` when it is complete and was built for exactly ``fields`` (else None)."""
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("complete") is not True or meta.get("fields") != fields:
        return None
    try:
        cache = FeatureCache(directory, meta)
    except (OSError, ValueError, DataError):
        return None
    if list(cache.shape) != list(meta.get("shape", [])):
        return None
    return cache


# --------------------------------------------------------------------------- building
Extractor = Callable[[Any], Any]  # images [B, 3, s, s] → region map [B, C, h, w]


def ensure_feature_cache(split: Any, spec: ExtractorSpec, image_root: str | Path | None = None,
                         device: Any = "cpu", batch_size: int = 64, num_workers: int = 0,
                         extractor: Extractor | None = None, progress: bool = True,
                         root: str | Path | None = None) -> FeatureCache:
    """The feature cache of every image of ``split`` under ``spec``: reused when complete, else built.

    ``extractor`` (images → ``[B, C, h, w]``) replaces the backbone ``spec`` names — for tests; the
    key still comes from ``spec``. ``root`` overrides :func:`cache_root`.
    """
    transform, description = extraction_transform(split.dataset, spec.img_size)
    fields = cache_fields(spec, description, split)
    key = cache_key(fields)
    base = Path(root) if root is not None else cache_root(split.directory)
    final = base / key
    cache = open_cache(final, fields)
    if cache is not None:
        return cache
    base.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(base, key)
    temporary = base / f".{key}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        meta = _build(split, spec, transform, fields, key, temporary, image_root, device, batch_size,
                      num_workers, extractor, progress)
        _move_into_place(temporary, final, fields)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    cache = open_cache(final, fields)
    if cache is None:  # pragma: no cover - only if the folder vanished between rename and open
        raise DataError(f"the feature cache {final} could not be reopened after building; delete it and retry")
    return cache


def _build(split, spec: ExtractorSpec, transform, fields, key: str, folder: Path, image_root, device,
           batch_size: int, num_workers: int, extractor: Extractor | None, progress: bool) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader

    from zslbench.backbones.cnn import region_map
    from zslbench.data.images import ImageDataset

    device = torch.device(device)
    started = time.perf_counter()
    if extractor is None:
        backbone = spec.build().to(device)
        extractor = lambda images: region_map(backbone, images)  # noqa: E731
    dataset = ImageDataset(split, np.arange(split.num_images), transform, image_root)
    loader = DataLoader(dataset, batch_size=max(1, batch_size), shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    array = None
    written = 0
    with _progress_bar(progress, f"extracting {spec.backbone} features", len(loader)) as advance:
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            with torch.no_grad(), _autocast(device):
                regions = extractor(images)
            channels, h, w = (int(s) for s in regions.shape[1:])
            if array is None:  # the geometry is known from the first batch
                array = np.lib.format.open_memmap(folder / FEATURES_FILE, mode="w+", dtype=np.float16,
                                                  shape=(split.num_images, h * w, channels))
                grid = (h, w)
            rows = regions.flatten(2).transpose(1, 2).to("cpu", torch.float16).numpy()
            array[written:written + len(rows)] = rows
            written += len(rows)
            advance()
    if array is None:
        raise DataError(f"dataset {split.dataset} has no images to extract features from")
    array.flush()
    shape = list(array.shape)
    del array
    meta = {"complete": True, "key": key, "fields": fields, "shape": shape, "grid": list(grid),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.perf_counter() - started, 3)}
    # the meta file last: its "complete" flag is what makes the folder a cache
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))
    return meta


def _autocast(device):
    import contextlib

    import torch

    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
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


def _move_into_place(temporary: Path, final: Path, fields: dict[str, Any]) -> None:
    """Rename the finished build to its key; an invalid folder there is replaced, a valid one kept."""
    try:
        temporary.rename(final)
        return
    except OSError:
        if not final.exists():
            raise
    existing = open_cache(final, fields)
    if existing is not None:  # another process finished the same cache first
        existing.close()
        shutil.rmtree(temporary, ignore_errors=True)
        return
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    final.rename(old)
    temporary.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale_builds(base: Path, key: str) -> None:
    """Delete temporary folders of this key left by dead processes on this host."""
    host = socket.gethostname()
    for folder in base.glob(f".{key}.tmp-*"):
        parts = folder.name.split(".tmp-", 1)[1].rsplit("-", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if not _alive(int(parts[1])):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- batches for the engine
class FeatureBatches:
    """Batches of cached region features, in the engine's batch-dict format.

    Yields ``{"features": float32 [B, R, C], "label": int64 global ids, "seen_label": int64 index into
    the seen classes (−1 unseen), "index": int64 image ids}``. ``generator`` (reseeded by the trainer
    every epoch) drives shuffling and class-balanced sampling. Class-balanced batches draw
    ``min(C, B)`` distinct classes and ``max(B // C, 1)`` images of each (with replacement), C = the
    classes present; an epoch has ``len(indices) // B`` of them. The next batch is read by a
    background thread while the current one trains.
    """

    def __init__(self, cache: FeatureCache, indices: np.ndarray, labels: np.ndarray, seen_index: np.ndarray,
                 batch_size: int, shuffle: bool, drop_last: bool, balanced: bool, pin_memory: bool = False):
        import torch

        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seen_index = np.asarray(seen_index, dtype=np.int64)
        self.batch_size, self.shuffle, self.drop_last, self.balanced = batch_size, shuffle, drop_last, balanced
        self.pin_memory = pin_memory
        self.generator = torch.Generator()
        self.shard = Dist()  # set by the trainer: this rank's slice of every global batch
        if balanced:
            classes = np.unique(self.labels)
            self._members = [np.flatnonzero(self.labels == c) for c in classes]

    def __len__(self) -> int:
        n = len(self.indices)
        if self.balanced:
            return max(1, n // self.batch_size) if n else 0
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _positions(self) -> Iterator[np.ndarray]:
        import torch

        n = len(self.indices)
        if self.balanced:
            num_classes = len(self._members)
            ways, shots = min(num_classes, self.batch_size), max(self.batch_size // num_classes, 1)
            for _ in range(len(self)):
                chosen = torch.randperm(num_classes, generator=self.generator)[:ways].tolist()
                picks = [self._members[c][torch.randint(len(self._members[c]), (shots,),
                                                        generator=self.generator).numpy()] for c in chosen]
                yield np.concatenate(picks)
            return
        order = torch.randperm(n, generator=self.generator).numpy() if self.shuffle else np.arange(n)
        for b in range(len(self)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size]

    def _load(self, positions: np.ndarray) -> dict[str, Any]:
        import torch

        features = torch.from_numpy(self.cache.read(self.indices[positions]))
        if self.pin_memory:
            features = features.pin_memory()
        return {"features": features,
                "label": torch.from_numpy(self.labels[positions]),
                "seen_label": torch.from_numpy(self.seen_index[positions]),
                "index": torch.from_numpy(self.indices[positions])}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # drawn on this thread, so the generator's sequence is fixed; every rank draws the global batches
        positions = (p[rank_slice(len(p), self.shard)] for p in self._positions())
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


def feature_batches(cfg: Any, data: Any, indices: np.ndarray, train: bool, device: Any) -> FeatureBatches:
    """The engine's batch source for feature models: the cached features of ``indices``.

    The cache is built on first use (all images of the dataset, so every split shares it) and
    kept in ``data.extra`` for the rest of the run.
    """
    import torch

    from zslbench.engine.data import seen_lookup

    # the model's own input size (not data.image_size): the model sizes its layers from the same spec
    spec = ExtractorSpec.from_model_config(cfg.model)
    store = data.extra.setdefault("feature_caches", {})
    cache = store.get(spec)
    if cache is None:
        device = torch.device(device)
        workers = cfg.data.num_workers or (min(8, os.cpu_count() or 1) if data.split.num_images > 2000 else 0)
        cache = ensure_feature_cache(data.split, spec, data.image_root, device,
                                     batch_size=int(getattr(cfg.model, "extract_batch_size", 64)),
                                     num_workers=workers)
        store[spec] = cache
    indices = np.asarray(indices, dtype=np.int64)
    labels = np.asarray(data.split.labels)[indices]
    batch_size = cfg.train.batch_size if train else cfg.eval.batch_size
    drop_last = train and cfg.train.drop_last and len(indices) >= batch_size
    return FeatureBatches(cache, indices, labels, seen_lookup(data.info)[labels], batch_size, shuffle=train,
                          drop_last=drop_last, balanced=train and cfg.train.balanced_batches,
                          pin_memory=torch.device(device).type == "cuda")


__all__ = ["ExtractorSpec", "FeatureCache", "FeatureBatches", "ensure_feature_cache", "feature_batches",
           "cache_root", "cache_key", "cache_fields", "extraction_transform", "open_cache"]
