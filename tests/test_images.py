"""Image transforms and ImageDataset: stand-in images at the real CUB relative paths, a tiny dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from test_xlsa17 import write_tiny_dataset
from zslbench.data.images import ImageDataset, build_transform, prepare_image, resize_size
from zslbench.data.xlsa17 import load_split
from zslbench.core.errors import DataError


def write_stand_in(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8).squeeze()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)


@pytest.fixture()
def cub_images(shared_data: Path, tmp_path: Path):
    """The real CUB split with stand-in JPEGs at the real relative paths for a few images."""
    split = load_split("CUB", shared_data, image_root=tmp_path)
    chosen = np.array([0, 1, int(split.split("test_unseen")[0]), int(split.split("trainval")[5])])
    for k, index in enumerate(chosen):
        write_stand_in(tmp_path / split.image_files[index], (90 + 10 * k, 70), seed=k)
    return split, chosen, tmp_path


@pytest.fixture()
def tiny_split(tmp_path: Path):
    write_tiny_dataset(tmp_path / "synth", image_size=16)
    return load_split("synth", tmp_path)


def test_cub_stand_ins_load_with_labels(cub_images) -> None:
    split, chosen, root = cub_images
    dataset = ImageDataset(split, chosen, build_transform("CUB", train=False, image_size=32))
    assert len(dataset) == 4
    item = dataset[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and int(item["label"]) == 150  # 001.Black_footed_Albatross
    assert int(item["index"]) == 0
    for position, index in enumerate(chosen):
        assert int(dataset[position]["label"]) == split.labels[index]
        assert int(dataset[position]["index"]) == index
    expected = "CUB_200_2011/images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg"
    assert dataset.path(0) == root / expected


@pytest.mark.parametrize("dataset", ["CUB", "AWA2", "SUN", "synth", "other"])
@pytest.mark.parametrize("train", [True, False])
def test_transforms_give_the_model_size(dataset: str, train: bool) -> None:
    transform = build_transform(dataset, train=train, image_size=24)
    out = transform(Image.new("RGB", (50, 37), (200, 10, 10)))
    assert out.shape == (3, 24, 24)
    # ImageNet normalisation: red channel of pure red (200/255 − 0.485) / 0.229
    assert out[0].mean().item() == pytest.approx((200 / 255 - 0.485) / 0.229, abs=1e-2)


def test_transform_recipes_follow_svip() -> None:
    names = lambda t: [type(step).__name__ for step in t.transforms]  # noqa: E731
    assert names(build_transform("CUB", True, 224))[:3] == ["Resize", "CenterCrop", "RandomHorizontalFlip"]
    assert build_transform("CUB", True, 224).transforms[0].size == 256
    assert names(build_transform("AWA2", True, 224))[0] == "Resize"
    assert build_transform("AWA2", True, 224).transforms[0].size == (224, 224)
    assert names(build_transform("SUN", True, 224))[:2] == ["RandomResizedCrop", "RandomHorizontalFlip"]
    assert names(build_transform("SUN", False, 224))[:2] == ["Resize", "CenterCrop"]
    assert "RandomHorizontalFlip" in names(build_transform("synth", True, 32))
    assert "RandomHorizontalFlip" not in names(build_transform("synth", False, 32))
    # every generated preset directory (synth-tiny, synth-paper, ...) uses the synth recipe
    assert names(build_transform("synth-tiny", True, 32))[:2] == ["_ResizeIfNeeded", "RandomHorizontalFlip"]
    assert resize_size(224) == 256
    with pytest.raises(DataError, match="image_size must be positive"):
        build_transform("CUB", True, 0)


def test_synth_test_transform_is_identity_at_model_size() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    out = build_transform("synth", train=False, image_size=16)(image)
    plain = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    mean, std = torch.tensor([0.485, 0.456, 0.406])[:, None, None], torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    torch.testing.assert_close(out, (plain - mean) / std)
    assert build_transform("synth", train=False, image_size=8)(image).shape == (3, 8, 8)


def test_grayscale_image_becomes_rgb(tiny_split, tmp_path: Path) -> None:
    write_stand_in(tiny_split.image_path(3), (16, 16), mode="L")
    raw = ImageDataset(tiny_split, [3], transform=None)[0]["image"]
    assert raw.shape == (3, 16, 16)
    assert torch.equal(raw[0], raw[1]) and torch.equal(raw[1], raw[2])
    assert ImageDataset(tiny_split, [3], build_transform("synth", True, 16))[0]["image"].shape == (3, 16, 16)


@pytest.mark.parametrize("dataset_name", ["synth", "CUB"])
def test_cache_gives_identical_tensors(tmp_path: Path, dataset_name: str) -> None:
    write_tiny_dataset(tmp_path / dataset_name, image_size=40, anchor=("CUB_200_2011/images/" if dataset_name == "CUB"
                                                                       else "images/"))
    split = load_split(dataset_name, tmp_path)
    transform = build_transform(dataset_name, train=False, image_size=16)
    indices = split.split("test_unseen")
    plain = ImageDataset(split, indices, transform)
    cached = ImageDataset(split, indices, transform, cache=True)
    assert cached.cached == 0
    cached.preload(num_threads=2, progress=True)
    assert cached.cached == len(indices)
    for position in range(len(indices)):
        torch.testing.assert_close(plain[position]["image"], cached[position]["image"], rtol=0, atol=0)
    # cached images are stored shrunk, not at full resolution
    assert max(cached._store[0].shape[:2]) < 40


def test_cache_fills_lazily_without_preload(tiny_split) -> None:
    dataset = ImageDataset(tiny_split, [0, 1, 2], build_transform("synth", False, 16), cache=True)
    first = dataset[1]["image"]
    assert dataset.cached == 1
    torch.testing.assert_close(dataset[1]["image"], first, rtol=0, atol=0)
    with pytest.raises(DataError, match="preload\\(\\) needs an ImageDataset built with cache=True"):
        ImageDataset(tiny_split, [0], None).preload()


def test_missing_image_names_the_file(cub_images) -> None:
    split, _chosen, root = cub_images
    absent = int(split.split("test_seen")[0])
    dataset = ImageDataset(split, [absent], build_transform("CUB", False, 32))
    with pytest.raises(DataError, match=f"image .*{split.image_files[absent]} is missing"):
        dataset[0]


def test_corrupt_image_names_the_file(tiny_split) -> None:
    path = tiny_split.image_path(4)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match=f"image {path} is corrupt or unreadable"):
        ImageDataset(tiny_split, [4], build_transform("synth", False, 16))[0]


def test_indices_out_of_range(tiny_split) -> None:
    with pytest.raises(DataError, match="image indices must lie in 0..29"):
        ImageDataset(tiny_split, [30], None)


def test_prepare_image_never_enlarges() -> None:
    small = Image.new("RGB", (20, 10))
    assert prepare_image(small, "CUB", 224).size == (20, 10)
    assert prepare_image(Image.new("RGB", (400, 300)), "CUB", 224).size == (341, 256)
    assert prepare_image(Image.new("RGB", (20, 10)), "synth", 16).size == (16, 16)


def test_works_with_a_dataloader(tiny_split) -> None:
    dataset = ImageDataset(tiny_split, tiny_split.split("trainval"), build_transform("synth", True, 16), cache=True)
    batch = next(iter(torch.utils.data.DataLoader(dataset.preload(2), batch_size=4)))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["label"].dtype == torch.int64


# --------------------------------------------------------------------------- precomputed features
def test_feature_dataset_reads_res101_features(tmp_path: Path) -> None:
    import scipy.io

    from test_xlsa17 import rewrite_mat
    from zslbench.data.features import FeatureDataset

    write_tiny_dataset(tmp_path / "tiny", images=False)
    features = np.arange(8 * 30, dtype=np.float64).reshape(8, 30)  # xlsa17 layout: [D, N]
    rewrite_mat(tmp_path / "tiny" / "res101.mat", features=features)
    assert "features" in {name for name, *_ in scipy.io.whosmat(str(tmp_path / "tiny" / "res101.mat"))}
    split = load_split("tiny", tmp_path)
    dataset = FeatureDataset(split, split.split("test_unseen"))
    item = dataset[2]
    assert dataset.dim == 8 and len(dataset) == 10
    assert int(item["index"]) == 22 and int(item["label"]) == 4
    np.testing.assert_array_equal(item["features"].numpy(), features[:, 22].astype(np.float32))


def test_feature_dataset_without_features(tiny_split) -> None:
    from zslbench.data.features import FeatureDataset

    with pytest.raises(DataError, match="has no ResNet-101 features .*optional and only needed for feature models"):
        FeatureDataset(tiny_split, [0])
