"""Everything a run needs from its dataset: splits, model-facing dataset info, batch iterators.

Two batch sources share one interface (iterate → dicts of tensors):

* :class:`MemoryBatches` keeps every image of a split decoded and resized as one uint8 tensor, so
  an epoch is tensor slicing plus flips — used for the synthetic benchmark and small image sets,
  where PNG decoding would otherwise dominate a CPU step;
* :class:`LoaderBatches` wraps a ``torch.utils.data.DataLoader`` over the image dataset with the
  per-dataset transforms of SVIP.md §7 — used for the real benchmarks.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from zslbench.config import Config, default_data_root
from zslbench.engine.distributed import Dist, rank_slice
from zslbench.catalogue import DatasetInfo

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class RunData:
    """The dataset side of a run."""

    split: Any  # zslbench.data.xlsa17.SplitInfo
    info: DatasetInfo
    image_root: Path
    image_size: int
    masks_dir: Path | None = None  # synth part masks, for the patch-selection metric
    extra: dict[str, Any] = field(default_factory=dict)


def dataset_directory(cfg: Config, console=None) -> tuple[str, Path]:
    """(dataset folder name, data root); generates the synthetic benchmark on first use."""
    root = Path(cfg.data.root or default_data_root())
    if cfg.data.dataset != "synth":
        return cfg.data.dataset, root
    from zslbench.data.synth import ensure_synth

    directory = ensure_synth(root, preset=cfg.data.synth_preset, seed=cfg.data.synth_seed, console=console)
    return directory.name, directory.parent


def image_size_of(cfg: Config) -> int:
    return cfg.data.image_size or cfg.model.img_size


def load_run_data(cfg: Config, console=None) -> RunData:
    from zslbench.data.wordvec import load_word_vectors
    from zslbench.data.xlsa17 import load_split

    name, root = dataset_directory(cfg, console)
    split = load_split(name, root, cfg.data.image_root or None)
    word_vectors = load_word_vectors(cfg.data.word_vectors, split, seed=cfg.train.seed)
    info = DatasetInfo(
        name=cfg.data.dataset,
        class_attributes=np.asarray(split.class_attributes, dtype=np.float32),
        seen_classes=np.asarray(split.seen_classes, dtype=np.int64),
        unseen_classes=np.asarray(split.unseen_classes, dtype=np.int64),
        word_vectors=np.asarray(word_vectors, dtype=np.float32),
        attribute_names=list(split.attribute_names),
        attribute_groups=[list(g) for g in split.attribute_groups.values()],
    )
    image_root = Path(cfg.data.image_root) if cfg.data.image_root else Path(split.directory)
    masks = Path(split.directory) / "masks"
    return RunData(split, info, image_root, image_size_of(cfg), masks if masks.is_dir() else None)


# ------------------------------------------------------------------------- batch sources
def _decode(path: Path, size: int, geometry: str = "squash") -> np.ndarray:
    # one place maps missing/damaged/unusable images to DataError
    from zslbench.data.images import apply_geometry, decode_image

    return np.asarray(apply_geometry(decode_image(path), geometry, size), dtype=np.uint8)


def decode_images(paths: list[Path], size: int, threads: int = 0, geometry: str = "squash") -> torch.Tensor:
    """Decode and resize ``paths`` into one uint8 tensor [N, 3, size, size] (PIL releases the GIL)."""
    threads = threads or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(threads) as pool:
        arrays = list(pool.map(lambda p: _decode(p, size, geometry), paths))
    if not arrays:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class MemoryBatches:
    """Batches from images held decoded in memory; flips and normalisation happen on whole batches."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, indices: np.ndarray, seen_index: np.ndarray,
                 batch_size: int, train: bool, shuffle: bool, drop_last: bool, flip: bool):
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.seen_index = torch.as_tensor(seen_index, dtype=torch.long)
        self.batch_size, self.train, self.shuffle, self.drop_last, self.flip = batch_size, train, shuffle, drop_last, flip
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
        self.generator: torch.Generator | None = None
        self.shard = Dist()  # set by the trainer: this rank's slice of every global batch

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for b in range(len(self)):
            take = order[b * self.batch_size:(b + 1) * self.batch_size]
            # every rank draws the global batch's flips, so the random stream matches a single process
            flip = torch.rand(len(take), generator=self.generator) < 0.5 if self.train and self.flip else None
            mine = rank_slice(len(take), self.shard)
            take = take[mine]
            images = self.images[take].float()
            if flip is not None:
                images = torch.where(flip[mine].view(-1, 1, 1, 1), images.flip(-1), images)
            yield {
                "image": (images - self.mean) / self.std,
                "label": self.labels[take],
                "seen_label": self.seen_index[take],
                "index": self.indices[take],
            }


class LoaderBatches:
    """A DataLoader over the image dataset, yielding the same dicts as :class:`MemoryBatches`."""

    def __init__(self, dataset, seen_lookup: torch.Tensor, batch_size: int, train: bool, shuffle: bool,
                 drop_last: bool, num_workers: int, pin_memory: bool):
        from torch.utils.data import DataLoader

        self.generator = torch.Generator()
        self.seen_lookup = seen_lookup
        self.batch_sampler = ShardedBatchSampler(len(dataset), batch_size, shuffle, drop_last, self.generator)
        self.loader = DataLoader(dataset, batch_sampler=self.batch_sampler, num_workers=num_workers,
                                 pin_memory=pin_memory, persistent_workers=num_workers > 0)

    @property
    def shard(self) -> Dist:
        return self.batch_sampler.shard

    @shard.setter
    def shard(self, value: Dist) -> None:
        self.batch_sampler.shard = value

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in self.loader:
            batch["seen_label"] = self.seen_lookup[batch["label"]]
            yield batch


class ShardedBatchSampler:
    """Global batches of a (seeded) permutation; each rank takes its contiguous slice of each."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, drop_last: bool, generator: torch.Generator):
        self.n, self.batch_size, self.shuffle, self.drop_last, self.generator = n, batch_size, shuffle, drop_last, generator
        self.shard = Dist()

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        for b in range(len(self)):
            take = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield take[rank_slice(len(take), self.shard)].tolist()


def seen_lookup(info: DatasetInfo) -> np.ndarray:
    """global class id → index into the seen classes (−1 for unseen)."""
    lookup = np.full(info.num_classes, -1, dtype=np.int64)
    lookup[info.seen_classes] = np.arange(len(info.seen_classes))
    return lookup


def make_batches(cfg: Config, data: RunData, indices: np.ndarray, train: bool, device: torch.device):
    """The batch source over ``indices`` of the split's image list (or of its cached region features)."""
    from zslbench.catalogue import model_entry

    entry = model_entry(cfg.model.name)
    if entry.input_kind == "features":
        from zslbench.data.feature_cache import feature_batches

        return feature_batches(cfg, data, indices, train, device)
    split, lookup = data.split, seen_lookup(data.info)
    labels = np.asarray(split.labels)[indices]
    batch_size = cfg.train.batch_size if train else cfg.eval.batch_size
    shuffle = train and cfg.train.quirks != "reference"  # the reference loader is not shuffled
    drop_last = train and cfg.train.drop_last and len(indices) >= batch_size
    from zslbench.data.images import ImageDataset, build_transform, cacheable_geometry

    recipe = entry.image_recipe
    plan = cacheable_geometry(cfg.data.dataset, train, recipe)
    if cfg.data.cache_images and plan is not None and (cfg.data.dataset == "synth" or len(indices) <= 20000):
        geometry, flip = plan  # decoded once through the transform's fixed geometry, flipped per batch
        images = _cached_images(data, indices, geometry)
        return MemoryBatches(images, labels, indices, lookup[labels], batch_size, train, shuffle, drop_last, flip=flip)
    transform = build_transform(cfg.data.dataset, train, data.image_size, recipe)
    dataset = ImageDataset(split, indices, transform, data.image_root)
    return LoaderBatches(dataset, torch.as_tensor(lookup), batch_size, train, shuffle, drop_last,
                         cfg.data.num_workers, pin_memory=device.type == "cuda")


def _cached_images(data: RunData, indices: np.ndarray, geometry: str = "squash") -> torch.Tensor:
    store = data.extra.setdefault("decoded", {}).setdefault(geometry, {})
    missing = [int(i) for i in indices if int(i) not in store]
    if missing:
        paths = [Path(data.split.image_path(i, data.image_root)) for i in missing]
        decoded = decode_images(paths, data.image_size, geometry=geometry)
        for position, i in enumerate(missing):
            store[i] = decoded[position]
    if len(indices) == 0:
        return torch.zeros((0, 3, data.image_size, data.image_size), dtype=torch.uint8)
    return torch.stack([store[int(i)] for i in indices])


def superpatch_masks(data: RunData, indices: np.ndarray, patch_size: int) -> np.ndarray | None:
    """Ground-truth creature super-patches [N, P] for synth test images (None elsewhere)."""
    if data.masks_dir is None:
        return None
    from zslbench.data.masks import load_mask, superpatch_relevance

    def one(i: int) -> np.ndarray:
        relative = Path(data.split.image_files[i])
        mask_path = data.masks_dir / Path(*relative.parts[1:]) if relative.parts[0] == "images" else data.masks_dir / relative
        mask = load_mask(mask_path)
        scale = mask.shape[0] / data.image_size
        return superpatch_relevance(mask, int(round(patch_size * scale))) > 0

    with ThreadPoolExecutor(4) as pool:
        return np.stack(list(pool.map(one, [int(i) for i in indices])))
