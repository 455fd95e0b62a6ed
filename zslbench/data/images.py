"""Image datasets and the per-dataset transforms of SVIP.md §7, scaled to any input size.

The real-data transforms, for an input size ``s`` (224 in the papers):

* CUB train: Resize(256/224·s) → CenterCrop(s) → HorizontalFlip
* AWA2 train: Resize((s, s))
* SUN train: RandomResizedCrop(s) → HorizontalFlip
* test (every real dataset): Resize(256/224·s) → CenterCrop(s)

then ToTensor and ImageNet mean/std. Synthetic images are generated at the model's size, so
synth trains with HorizontalFlip only and tests with the identity (a resize only when sizes differ).

:class:`ImageDataset` may keep decoded images in memory (``cache=True``) as uint8 arrays,
already shrunk to the size the transform starts from, so later epochs skip decoding.

This module imports torch; the CLI imports it only inside commands.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from zslbench.data.inspect import unsupported_mode
from zslbench.data.xlsa17 import SplitInfo, is_synthetic
from zslbench.core.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
REAL_DATASETS = ("CUB", "AWA2", "SUN")


class DatasetTransform(T.Compose):
    """A torchvision ``Compose`` that remembers which dataset and input size it was built for.

    ``base_size`` is the deterministic first resize every image may receive before the rest of the
    pipeline (see :func:`prepare_image`); the image cache stores images at that size.
    """

    def __init__(self, steps: Sequence[Callable], dataset: str, image_size: int, train: bool) -> None:
        super().__init__(list(steps))
        self.dataset = dataset
        self.image_size = image_size
        self.train = train


def resize_size(image_size: int) -> int:
    """The shorter-side size before the centre crop: 256/224 of the input size (256 for 224).

    >>> resize_size(224), resize_size(64)
    (256, 73)
    """
    return int(math.floor(image_size * 256 / 224))


#: Per-model image recipes: ``dataset`` = the dataset's SVIP.md §7 transforms; ``resize_crop`` =
#: Resize(256/224·s) → CenterCrop(s) for training and test alike, no augmentation (APN, BASELINES.md §3).
RECIPES = ("dataset", "resize_crop")


def build_transform(dataset: str, train: bool, image_size: int, recipe: str = "dataset") -> DatasetTransform:
    """The SVIP.md §7 transform of ``dataset`` (train or test) for ``image_size`` × ``image_size`` inputs,
    or the model's own ``recipe`` (see :data:`RECIPES`; synthetic images always keep their own).

    >>> build_transform("CUB", train=False, image_size=64).image_size
    64
    """
    if image_size <= 0:
        raise DataError(f"image_size must be positive, got {image_size}; set data.image_size or model.img_size")
    resize = resize_size(image_size)
    if recipe == "resize_crop" and not is_synthetic(dataset):
        steps = [T.Resize(resize), T.CenterCrop(image_size)]
    elif is_synthetic(dataset):
        steps: list[Callable] = [_ResizeIfNeeded(image_size)]
        if train:
            steps.append(T.RandomHorizontalFlip())
    elif not train:
        steps = [T.Resize(resize), T.CenterCrop(image_size)]
    elif dataset == "AWA2":
        steps = [T.Resize((image_size, image_size))]
    elif dataset == "SUN":
        steps = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
    else:  # CUB and any other xlsa17 dataset: the CUB recipe
        steps = [T.Resize(resize), T.CenterCrop(image_size), T.RandomHorizontalFlip()]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return DatasetTransform(steps, dataset, image_size, train)


class _ResizeIfNeeded:
    """Resize to (size, size) only when the image has another size (synthetic images usually fit)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        if image.size == (self.size, self.size):
            return image
        return image.resize((self.size, self.size), Image.Resampling.BILINEAR)

    def __repr__(self) -> str:
        return f"ResizeIfNeeded(size={self.size})"


def prepare_image(image: Image.Image, dataset: str, image_size: int | None) -> Image.Image:
    """The deterministic shrink applied to every decoded image before the transform (cached when caching).

    synth: to (s, s) when the size differs. Real datasets: the shorter side down to 256/224·s when
    it is larger (never enlarged), so a cache holds small images; the transform's own resize then
    sees the same picture whether or not the cache is on.
    """
    if not image_size:
        return image
    if is_synthetic(dataset):
        return _ResizeIfNeeded(image_size)(image)
    target = resize_size(image_size)
    width, height = image.size
    shorter = min(width, height)
    if shorter <= target:
        return image
    # the same arithmetic as torchvision's Resize(int), so its later resize is a no-op
    size = (target, int(target * height / width)) if width <= height else (int(target * width / height), target)
    return image.resize(size, Image.Resampling.BILINEAR)


def cacheable_geometry(dataset: str, train: bool, recipe: str = "dataset") -> tuple[str, bool] | None:
    """``(geometry, flip)`` when the transform is a fixed geometry (``squash`` = Resize((s, s)),
    ``resize_crop`` = Resize → CenterCrop) followed at most by a random horizontal flip, so decoded
    images can be kept in memory and flipped per batch; None when it draws other random numbers
    (SUN's RandomResizedCrop), which needs the per-image pipeline.

    >>> cacheable_geometry("CUB", train=True), cacheable_geometry("SUN", train=True)
    (('resize_crop', True), None)
    """
    if is_synthetic(dataset):
        return "squash", train
    if recipe == "resize_crop" or not train:
        return "resize_crop", False
    if dataset == "AWA2":
        return "squash", False
    if dataset == "SUN":
        return None
    return "resize_crop", True


def apply_geometry(image: Image.Image, geometry: str, image_size: int) -> Image.Image:
    """The deterministic part of a transform (see :func:`cacheable_geometry`), exactly as torchvision does it."""
    if geometry == "squash":
        return image if image.size == (image_size, image_size) else T.functional.resize(image, [image_size, image_size])
    return T.functional.center_crop(T.functional.resize(image, resize_size(image_size)), image_size)


def decode_image(path: str | Path) -> Image.Image:
    """Open an 8-bit image as RGB, whatever its colour mode; a missing or damaged file, or one with more
    than 8 bits per channel (see :func:`~zslbench.data.inspect.unsupported_mode`), raises :class:`DataError`."""
    try:
        with Image.open(path) as image:
            problem = unsupported_mode(image.mode)
            if problem:
                raise DataError(f"image {path} {problem}; save it as 8-bit RGB or greyscale")
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image {path} is missing; check --image-root / data.image_root, or run "
                        "`zslbench data check` to list every missing file") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"image {path} is corrupt or unreadable ({exc.__class__.__name__}: {exc}); "
                        "re-download or regenerate it") from None


class ImageDataset(Dataset):
    """Images of ``split`` at ``indices`` (0-based positions in the split's image list).

    Items are ``{"image": float tensor [3, s, s], "label": int64 global class id,
    "index": int64 position in the image list}``.

    With ``cache=True`` each image is decoded once into a uint8 array (after :func:`prepare_image`)
    and later epochs start from it. Call :meth:`preload` before building a multi-worker DataLoader
    so the workers share the filled cache instead of each filling its own.
    """

    def __init__(
        self,
        split: SplitInfo,
        indices: Sequence[int] | np.ndarray,
        transform: Callable[[Image.Image], Any] | None,
        image_root: str | Path | None = None,
        cache: bool = False,
        image_size: int | None = None,
    ) -> None:
        self.split = split
        self.indices = np.asarray(indices, dtype=np.int64).ravel()
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= split.num_images):
            raise DataError(f"image indices must lie in 0..{split.num_images - 1} for {split.dataset}, "
                            f"got {int(self.indices.min())}..{int(self.indices.max())}")
        self.transform = transform
        self.image_root = Path(image_root) if image_root is not None else None
        # the size the cache shrinks to: given, or the transform's own input size
        self.image_size = image_size if image_size is not None else getattr(transform, "image_size", None)
        self.cache = cache
        self._store: list[np.ndarray | None] = [None] * len(self.indices) if cache else []
        self._labels = torch.from_numpy(split.labels[self.indices].copy())

    def __len__(self) -> int:
        return len(self.indices)

    def path(self, position: int) -> Path:
        """File of the ``position``-th item."""
        return self.split.image_path(int(self.indices[position]), self.image_root)

    def _load(self, position: int) -> Image.Image:
        image = decode_image(self.path(position))
        return prepare_image(image, self.split.dataset, self.image_size)

    def pixels(self, position: int) -> Image.Image:
        """The prepared RGB image of an item, from the cache when it is on."""
        if not self.cache:
            return self._load(position)
        stored = self._store[position]
        if stored is None:
            stored = np.asarray(self._load(position), dtype=np.uint8)
            self._store[position] = stored
        return Image.fromarray(stored)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        image = self.pixels(position)
        tensor = self.transform(image) if self.transform is not None else T.functional.pil_to_tensor(image)
        return {"image": tensor, "label": self._labels[position],
                "index": torch.tensor(self.indices[position], dtype=torch.int64)}

    @property
    def cached(self) -> int:
        """How many images the cache holds."""
        return sum(item is not None for item in self._store)

    def preload(self, num_threads: int = 4, progress: bool = False, console: Any = None) -> "ImageDataset":
        """Decode every image into the cache with ``num_threads`` threads (a rich progress bar if asked)."""
        if not self.cache:
            raise DataError("preload() needs an ImageDataset built with cache=True")
        todo = [p for p, item in enumerate(self._store) if item is None]

        def fill(position: int) -> None:
            self._store[position] = np.asarray(self._load(position), dtype=np.uint8)

        with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
            results = pool.map(fill, todo)
            if progress:
                from rich.progress import Progress

                with Progress(console=console, transient=True) as bar:
                    task = bar.add_task(f"caching {self.split.dataset} images", total=len(todo))
                    for _ in results:
                        bar.advance(task)
            else:
                for _ in results:
                    pass
        return self
