"""Building a feature cache: run the frozen backbone once over every image and store its regions.

Each image's last feature map becomes ``[R, C]`` region vectors (CNN: the ``h·w`` cells of the
map; ViT: the patch tokens), written in image order into ``features.npy`` through
:func:`numpy.lib.format.open_memmap`. The folder is built beside its final place and renamed into
place once ``meta.json`` (with ``"complete": true``) is written
(:func:`zslbench.core.files.build_in_sibling`): an interrupted build leaves nothing that looks
complete, and its folder is removed by the next build.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from zslbench.core.errors import DataError
from zslbench.core.files import build_in_sibling
from zslbench.data.feature_cache.key import (FEATURES_FILE, META_FILE, ExtractorSpec, cache_fields, cache_key,
                                             cache_root, extraction_transform)
from zslbench.data.feature_cache.reading import FeatureCache, is_complete, open_cache

Extractor = Callable[[Any], Any]  # images [B, 3, s, s] → region map [B, C, h, w]


def ensure_feature_cache(split: Any, spec: ExtractorSpec, image_root: str | Path | None = None,
                         device: Any = "cpu", batch_size: int = 64, num_workers: int = 0,
                         extractor: Extractor | None = None, progress: bool = True,
                         root: str | Path | None = None) -> FeatureCache:
    """The feature cache of every image of ``split`` under ``spec``: reused when complete, else built.

    ``extractor`` (images → ``[B, C, h, w]``) replaces the backbone ``spec`` names — for tests; the
    key still comes from ``spec``. ``root`` overrides :func:`~zslbench.data.feature_cache.key.cache_root`.
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

    def build(folder: Path) -> None:
        _build(split, spec, transform, fields, key, folder, image_root, device, batch_size, num_workers,
               extractor, progress)

    # another process that finished the same cache meanwhile wins; an invalid folder there is replaced
    build_in_sibling(final, build, keep_existing=lambda existing: is_complete(existing, fields))
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
