"""Every batch source of the engine; all iterate to dicts of tensors with the same keys.

* :class:`MemoryBatches` keeps every image of a split decoded and resized as one uint8 tensor, so
  an epoch is tensor slicing plus flips — used for the synthetic benchmark and small image sets,
  where PNG decoding would otherwise dominate a CPU step;
* :class:`LoaderBatches` wraps a ``torch.utils.data.DataLoader`` over the image dataset with the
  per-dataset transforms of SVIP.md §7 — used where images cannot be kept decoded (a transform that
  draws random crops, as SUN's does; large image sets; ``data.cache_images`` off);
* :class:`~zslbench.engine.feature_batches.FeatureBatches` reads cached region features — used
  for frozen-backbone models.

:func:`make_batches` picks one from the model's catalogue entry (its input kind and image recipe)
and the dataset's transform. Each source has a ``shard`` (:class:`~zslbench.engine.distributed.Dist`,
set by the trainer): every rank walks the same global batches and keeps its contiguous slice, and
each batch says how large the global batch was (``global_size``, an int), so a rank knows its
slice's share without asking the others.

Images travel as uint8 (a quarter of float32's bytes, pinned when the device is CUDA) and become
ImageNet-normalised float32 on the device: :func:`to_device`.

Example (eight 2×2 images in batches of three, unshuffled):
    >>> import numpy as np, torch
    >>> images = torch.zeros((8, 3, 2, 2), dtype=torch.uint8)
    >>> labels = np.arange(8) % 2
    >>> source = MemoryBatches(images, labels, np.arange(8), labels, batch_size=3, train=False, shuffle=False,
    ...                        drop_last=False, flip=False)
    >>> [batch["index"].tolist() for batch in source]
    [[0, 1, 2], [3, 4, 5], [6, 7]]
    >>> batch = to_device(next(iter(source)), torch.device("cpu"))
    >>> batch["image"].dtype, round(float(batch["image"][0, 0, 0, 0]), 4)  # black, normalised
    (torch.float32, -2.1179)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from zslbench.catalogue import model_entry
from zslbench.core.errors import UserError
from zslbench.config import Config
from zslbench.engine.distributed import Dist, rank_slice
from zslbench.engine.run_data import RunData, loader_workers
from zslbench.engine.sampling import Sampling, training_loop


def make_batches(cfg: Config, data: RunData, indices: np.ndarray, train: bool, device: torch.device,
                 precision: str | None = None):
    """The batch source over ``indices`` of the split's image list (or of its cached region features,
    extracted in ``precision``: the run's, ``bf16`` | ``fp32``; ``None`` = ``train.amp`` on ``device``)."""
    entry = model_entry(cfg.model.name)
    if entry.input_kind == "features":
        from zslbench.engine.feature_batches import feature_batches

        return feature_batches(cfg, data, indices, train, device, precision)
    # torchvision is imported by the first batch source, not by importing the engine
    from zslbench.data.images import ImageDataset, build_transform, cacheable_geometry

    split, lookup = data.split, data.info.seen_index()
    labels = np.asarray(split.labels)[indices]
    batch_size = cfg.train.batch_size if train else cfg.eval.batch_size
    shuffle = train and training_loop(cfg).shuffle  # e.g. SVIP's reference loader is not shuffled
    sampling = Sampling.for_training(cfg.train, shuffle) if train else Sampling(shuffle=False)
    drop_last = train and cfg.train.drop_last and len(indices) >= batch_size
    plan = cacheable_geometry(cfg.data.dataset, train, entry.image_recipe)
    if cfg.data.cache_images and plan is not None and (cfg.data.dataset == "synth" or len(indices) <= 20000):
        geometry, flip = plan  # decoded once through the transform's fixed geometry, flipped per batch
        images = _cached_images(data, indices, geometry)
        return MemoryBatches(images, labels, indices, lookup[labels], batch_size, train, shuffle, drop_last, flip=flip,
                             pin_memory=device.type == "cuda", sampling=sampling)
    transform = uint8_output(build_transform(cfg.data.dataset, train, data.image_size, entry.image_recipe))
    dataset = ImageDataset(split, indices, transform, data.image_root)
    workers = loader_workers(cfg.data.num_workers, len(indices))
    return LoaderBatches(dataset, torch.as_tensor(lookup), batch_size, train, shuffle, drop_last, workers,
                         pin_memory=device.type == "cuda", sampling=sampling, labels=labels)



def uint8_output(transform):
    """``transform`` ending in a uint8 tensor instead of ToTensor → Normalize (normalised by :func:`to_device`)."""
    from torchvision import transforms as T

    from zslbench.data.images import DatasetTransform

    steps = list(transform.transforms)
    if [type(step) for step in steps[-2:]] != [T.ToTensor, T.Normalize]:
        return transform
    return DatasetTransform([*steps[:-2], T.PILToTensor()], transform.dataset, transform.image_size, transform.train)


# --------------------------------------------------------------------------- onto the device
_NORMALISERS: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """``batch`` on ``device`` (copies issued without waiting); uint8 images become ImageNet-normalised
    float32 there, computed exactly as the CPU would (x − 255·mean) / (255·std)."""
    moved = {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    image = moved.get("image")
    if image is not None and image.dtype == torch.uint8:
        mean, std = _normaliser(image.device)
        moved["image"] = (image.float() - mean) / std
    return moved


def _normaliser(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = str(device)
    if key not in _NORMALISERS:
        from zslbench.data.images import IMAGENET_MEAN, IMAGENET_STD

        _NORMALISERS[key] = (torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255,
                             torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255)
    return _NORMALISERS[key]


# --------------------------------------------------------------------------- decoded images in memory
def _decode(path: Path, size: int, geometry: str = "squash") -> np.ndarray:
    # decode_image maps missing/damaged/unusable images to DataError
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


def _cached_images(data: RunData, indices: np.ndarray, geometry: str = "squash") -> torch.Tensor:
    """The decoded images of ``indices``; each is decoded once per run and geometry (kept in ``data.extra``)."""
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


class MemoryBatches:
    """Batches from images held decoded in memory (uint8); flips happen on whole batches, normalisation on the
    device (:func:`to_device`)."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, indices: np.ndarray, seen_index: np.ndarray,
                 batch_size: int, train: bool, shuffle: bool, drop_last: bool, flip: bool, pin_memory: bool = False,
                 sampling: Sampling | None = None):
        self.images = images
        self.sampling = sampling or Sampling(shuffle=shuffle)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.indices = torch.as_tensor(indices, dtype=torch.long)
        self.seen_index = torch.as_tensor(seen_index, dtype=torch.long)
        self.batch_size, self.train, self.shuffle, self.drop_last, self.flip = batch_size, train, shuffle, drop_last, flip
        self.pin_memory = pin_memory
        self.generator: torch.Generator | None = None
        self.shard = Dist()  # set by the trainer: this rank's slice of every global batch

    def __len__(self) -> int:
        return self.sampling.count(len(self.labels), self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        # no generator of its own: the global one, which the trainer reseeds every epoch
        for positions in self.sampling.batches(self.labels.numpy(), self.batch_size, self.generator, self.drop_last):
            take = torch.as_tensor(positions, dtype=torch.long)
            # every rank draws the global batch's flips, so the random stream matches a single process
            flip = torch.rand(len(take), generator=self.generator) < 0.5 if self.train and self.flip else None
            total, mine = len(take), rank_slice(len(take), self.shard)
            take = take[mine]
            images = self.images[take]
            if flip is not None:
                images = torch.where(flip[mine].view(-1, 1, 1, 1), images.flip(-1), images)
            yield {
                "image": images.pin_memory() if self.pin_memory else images,
                "label": self.labels[take],
                "seen_label": self.seen_index[take],
                "index": self.indices[take],
                "global_size": total,
            }


# --------------------------------------------------------------------------- images decoded per batch
class LoaderBatches:
    """A DataLoader over the image dataset, yielding the same dicts as :class:`MemoryBatches`."""

    def __init__(self, dataset, seen_lookup: torch.Tensor, batch_size: int, train: bool, shuffle: bool,
                 drop_last: bool, num_workers: int, pin_memory: bool, sampling: Sampling | None = None,
                 labels: np.ndarray | None = None):
        from torch.utils.data import DataLoader

        self.generator = torch.Generator()
        self.seen_lookup = seen_lookup
        self.batch_sampler = ShardedBatchSampler(len(dataset), batch_size, shuffle, drop_last, self.generator,
                                                 sampling=sampling, labels=labels)
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
        for b, batch in enumerate(_worker_errors_as_raised(self.loader)):
            batch["seen_label"] = self.seen_lookup[batch["label"]]
            # read after the loader has started the sampler's epoch, which records its batches' sizes
            batch["global_size"] = self.batch_sampler.global_sizes[b]
            yield batch


def _worker_errors_as_raised(loader) -> Iterator[Any]:
    """``loader``'s batches; a user error raised in a worker process comes out as its own one line (torch
    re-raises it with the worker's traceback in the message)."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except UserError as exc:
            raise type(exc)(worker_message(str(exc))) from None
        yield batch


def worker_message(text: str) -> str:
    """The original message of an exception re-raised from a DataLoader worker.

    >>> worker_message("Caught DataError in DataLoader worker process 0.\\nOriginal Traceback (most recent call "
    ...                "last):\\n  ...\\nzslbench.core.errors.DataError: image x.png is corrupt")
    'image x.png is corrupt'
    """
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    head, separator, message = last.partition(": ")
    return message if separator and " " not in head else last


class ShardedBatchSampler:
    """Global batches of a (seeded) permutation; each rank takes its contiguous slice of each.

    >>> sampler = ShardedBatchSampler(5, 4, shuffle=False, drop_last=False, generator=torch.Generator())
    >>> sampler.shard = Dist(rank=1, world=2)
    >>> list(sampler)
    [[2, 3], [4]]
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, drop_last: bool, generator: torch.Generator,
                 sampling: Sampling | None = None, labels: np.ndarray | None = None):
        self.n, self.batch_size, self.shuffle, self.drop_last, self.generator = n, batch_size, shuffle, drop_last, generator
        self.sampling = sampling or Sampling(shuffle=shuffle)
        self.labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels)
        self.global_sizes: list[int] = []  # of the batches drawn by the latest iteration
        self.shard = Dist()

    def __len__(self) -> int:
        return self.sampling.count(self.n, self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        plan = self.sampling.batches(self.labels, self.batch_size, self.generator, self.drop_last)
        self.global_sizes = [len(take) for take in plan]
        for take in plan:
            yield take[rank_slice(len(take), self.shard)].tolist()


# --------------------------------------------------------------------------- ground truth beside the batches
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
