"""Images kept decoded in memory go through the same geometry as the per-image transforms.

Real datasets small enough to cache (CUB, AWA2) are decoded once through the fixed part of their
transform (Resize → CenterCrop, or Resize((s, s)) for AWA2 training) and flipped per batch; SUN's
RandomResizedCrop cannot be cached and keeps the per-image pipeline; APN's own recipe
(Resize → CenterCrop, no augmentation) replaces the dataset's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zslbench.data.images import IMAGENET_MEAN, IMAGENET_STD, apply_geometry, build_transform, cacheable_geometry
from zslbench.engine.batches import LoaderBatches, MemoryBatches, to_device


def photo(width: int = 90, height: int = 60, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def normalised(image: Image.Image) -> torch.Tensor:
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 255
    return (pixels - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


@pytest.mark.parametrize("dataset, train, recipe", [("CUB", False, "dataset"), ("AWA2", True, "dataset"),
                                                   ("AWA2", False, "dataset"), ("CUB", True, "resize_crop")])
def test_cached_geometry_equals_the_transform(dataset, train, recipe):
    image = photo()
    geometry, flip = cacheable_geometry(dataset, train, recipe)
    assert not flip
    expected = build_transform(dataset, train, 32, recipe)(image)
    cached = normalised(apply_geometry(image, geometry, 32))
    assert cached.shape == expected.shape == (3, 32, 32)
    assert torch.allclose(cached, expected, atol=1e-6)


def test_cub_training_caches_the_crop_and_flips_per_batch():
    image = photo()
    geometry, flip = cacheable_geometry("CUB", train=True)
    assert (geometry, flip) == ("resize_crop", True)
    unflipped = build_transform("CUB", False, 32)(image)  # CUB train = test geometry + random flip
    assert torch.allclose(normalised(apply_geometry(image, geometry, 32)), unflipped, atol=1e-6)


def test_random_crops_are_not_cached_and_synthetic_images_keep_their_size():
    assert cacheable_geometry("SUN", train=True) is None
    assert cacheable_geometry("SUN", train=False) == ("resize_crop", False)
    assert cacheable_geometry("synth", train=True) == ("squash", True)
    square = photo(32, 32)
    assert apply_geometry(square, "squash", 32) is square


@pytest.fixture
def cub_like(tmp_path):
    """A 9-image CUB-layout dataset with non-square photos, loaded as a run would load it."""
    from zslbench.config import resolve
    from zslbench.data.xlsa17 import write_split_files
    from zslbench.engine.run_data import load_run_data

    files = [f"CUB_200_2011/images/{c:03d}.c/img{i}.jpg" for c in (1, 2, 3) for i in (0, 1, 2)]
    directory = write_split_files(tmp_path / "CUB", np.eye(3, 4) + 0.1, ["001.c", "002.c", "003.c"],
                                  np.repeat([0, 1, 2], 3), files,
                                  {"trainval": np.array([0, 1, 3, 4]), "test_seen": np.array([2, 5]),
                                   "test_unseen": np.array([6, 7, 8])})
    for i, name in enumerate(files):
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        photo(seed=i).save(directory / name, quality=95)
    np.save(directory / "attribute_w2v.npy", np.random.default_rng(0).standard_normal((4, 300)))

    def load(model: str, overrides=()):
        cfg = resolve(model, "CUB", "tiny", overrides=[f"data.root={tmp_path}", *overrides])
        return cfg, load_run_data(cfg)

    return load


@pytest.mark.parametrize("model, flips", [("svip", True), ("apn", False)])
def test_batch_sources_follow_the_dataset_and_the_models_recipe(cub_like, model, flips):
    from zslbench.engine.batches import make_batches

    cfg, data = cub_like(model)
    train = make_batches(cfg, data, np.array([0, 1, 3, 4]), train=True, device=torch.device("cpu"))
    assert isinstance(train, MemoryBatches) and train.flip is flips
    test = make_batches(cfg, data, np.array([6, 7]), train=False, device=torch.device("cpu"))
    transform = build_transform("CUB", False, data.image_size)
    expected = torch.stack([transform(Image.open(data.split.image_path(i, data.image_root)).convert("RGB"))
                            for i in (6, 7)])
    decoded = to_device(next(iter(test)), torch.device("cpu"))["image"]  # uint8 until it reaches the device
    assert decoded.shape == expected.shape
    assert torch.allclose(decoded, expected, atol=1e-5)  # cached uint8 crop == per-image transform


def test_sun_training_uses_the_per_image_pipeline(cub_like):
    from zslbench.engine.batches import make_batches

    cfg, data = cub_like("svip")
    cfg.data.dataset = "SUN"  # same files, SUN's training recipe (RandomResizedCrop)
    batches = make_batches(cfg, data, np.array([0, 1, 3, 4]), train=True, device=torch.device("cpu"))
    assert isinstance(batches, LoaderBatches)


def test_automatic_loader_workers_follow_the_cores_this_process_may_use(monkeypatch):
    """data.num_workers=-1 counts the cores of the process's affinity mask (a SLURM job pinned to 4 cores of a
    64-core node gets 4, not 8), shares them among the ranks on the machine, caps at 8, and starts none for a
    small image set."""
    from zslbench.engine import run_data

    monkeypatch.setattr(run_data.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(run_data.os, "sched_getaffinity", lambda pid: {4, 5, 6, 7}, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert run_data.loader_workers(-1, num_images=11_788) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert run_data.loader_workers(-1, num_images=11_788) == 2
    assert run_data.loader_workers(-1, num_images=1_999) == 0
    assert run_data.loader_workers(3, num_images=100) == 3
    monkeypatch.setattr(run_data.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert run_data.loader_workers(-1, num_images=11_788) == run_data.MAX_AUTO_WORKERS == 8
