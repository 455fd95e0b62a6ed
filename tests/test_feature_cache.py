"""The region-feature cache: built once, reused, rebuilt when any key part changes, never half-written."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zslbench.core.liveness import this_process
from zslbench.data.feature_cache import FEATURES_FILE, META_FILE, ExtractorSpec, ensure_feature_cache, open_cache
from zslbench.data.feature_cache import building, key as cache_key_module
from zslbench.data.xlsa17 import load_split, write_split_files
from zslbench.engine.feature_batches import FeatureBatches

NUM_CLASSES, PER_CLASS, SIZE = 4, 3, 32
SPEC = ExtractorSpec("resnet10t", img_size=SIZE, output_stride=8)  # 4×4 map of 512 channels


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture()
def split(tmp_path):
    """A 12-image xlsa17 dataset: classes 0, 1 seen (2 trainval + 1 test_seen image each), 2, 3 unseen."""
    rng = np.random.default_rng(0)
    directory = tmp_path / "data" / "toy"
    files, labels = [], []
    for c in range(NUM_CLASSES):
        for k in range(PER_CLASS):
            relative = f"images/class{c}/{k}.png"
            (directory / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(directory / relative)
            files.append(relative)
            labels.append(c)
    labels = np.array(labels)
    locs = {"trainval": np.array([0, 1, 3, 4]), "test_seen": np.array([2, 5]),
            "test_unseen": np.arange(6, 12)}
    write_split_files(directory, rng.random((NUM_CLASSES, 5)), [f"class{c}" for c in range(NUM_CLASSES)],
                      labels, files, locs)
    return load_split("toy", directory.parent)


@pytest.fixture()
def root(tmp_path) -> Path:
    """Where the tests' caches go (beside, not inside, the dataset)."""
    return tmp_path / "cache"


class CountingExtractor:
    """A deterministic stand-in backbone: region (i, j) of image b holds channel means, counted per call."""

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash during extraction")
        pooled = torch.nn.functional.adaptive_avg_pool2d(images, 2)  # [B, 3, 2, 2]
        return torch.cat([pooled, 2 * pooled], dim=1)  # [B, 6, 2, 2]


def build(split, root, spec=SPEC, extractor=None, **kw):
    return ensure_feature_cache(split, spec, device="cpu", batch_size=4, progress=False, root=root,
                                extractor=extractor, **kw)


def test_miss_builds_a_float16_memmap_of_every_image(split, root):
    cache = build(split, root)  # the real resnet10t backbone
    array = cache.memmap()
    assert isinstance(array, np.memmap) and array.dtype == np.float16
    assert array.shape == (NUM_CLASSES * PER_CLASS, 16, 512) and cache.grid == (4, 4)
    meta = json.loads((cache.directory / META_FILE).read_text())
    assert meta["complete"] is True and meta["shape"] == [12, 16, 512]
    assert meta["fields"]["backbone"] == "resnet10t" and meta["fields"]["weights"] == "random:0"
    assert cache.directory.parent == root and cache.directory.name == meta["key"]


def test_hit_reuses_the_cache_without_running_the_backbone(split, root):
    first = CountingExtractor()
    cache = build(split, root, extractor=first)
    assert first.calls == 3  # 12 images in batches of 4
    second = CountingExtractor()
    again = build(split, root, extractor=second)
    assert second.calls == 0 and again.directory == cache.directory
    np.testing.assert_array_equal(again.read(np.arange(12)), cache.read(np.arange(12)))


def test_cached_values_are_the_extractor_output_in_row_major_region_order(split, root):
    cache = build(split, root, extractor=CountingExtractor())
    transform, _ = cache_key_module.extraction_transform(split.dataset, SIZE)
    image = transform(Image.open(split.image_path(7)).convert("RGB"))[None]
    expected = CountingExtractor()(image).flatten(2).transpose(1, 2)[0].numpy()  # [4 regions, 6 channels]
    np.testing.assert_allclose(cache.read(np.array([7]))[0], expected, atol=2e-3)


@pytest.mark.parametrize("change", ["backbone", "output_stride", "input_size", "weights_seed", "transform",
                                    "image_list", "labels"])
def test_any_key_part_change_rebuilds(split, root, monkeypatch, change):
    build(split, root, extractor=CountingExtractor())
    spec, changed_split = SPEC, split
    if change == "backbone":
        spec = dataclasses.replace(SPEC, backbone="resnet18")
    elif change == "output_stride":
        spec = dataclasses.replace(SPEC, output_stride=16)
    elif change == "input_size":
        spec = dataclasses.replace(SPEC, img_size=48)
    elif change == "weights_seed":
        spec = dataclasses.replace(SPEC, seed=1)
    elif change == "transform":
        original = building.extraction_transform
        monkeypatch.setattr(building, "extraction_transform",
                            lambda dataset, size: (original(dataset, size)[0], "another transform"))
    elif change == "image_list":
        files = list(split.image_files)
        files[0], files[1] = files[1], files[0]
        changed_split = dataclasses.replace(split, image_files=files)
    elif change == "labels":
        labels = split.labels.copy()
        labels[0] = 1
        changed_split = dataclasses.replace(split, labels=labels)
    extractor = CountingExtractor()
    rebuilt = build(changed_split, root, spec=spec, extractor=extractor)
    assert extractor.calls == 3
    assert len([p for p in root.iterdir() if not p.name.startswith(".")]) == 2  # old and new side by side
    assert rebuilt.meta["complete"] is True


def test_extraction_precision_is_part_of_the_key(split, root):
    """bf16 (autocast) and fp32 extraction give different numbers: two caches, never one shared key."""
    weight = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def conv(images):  # a convolution, which bf16 autocast runs in bf16 (pooling alone it would leave in fp32)
        return torch.nn.functional.conv2d(images, weight, stride=8)

    fp32 = build(split, root, extractor=conv, precision="fp32")
    calls = []
    bf16 = build(split, root, extractor=lambda images: calls.append(1) or conv(images), precision="bf16")
    assert len(calls) == 3  # not reused
    assert fp32.directory != bf16.directory
    assert (fp32.meta["fields"]["precision"], bf16.meta["fields"]["precision"]) == ("fp32", "bf16")
    assert not np.array_equal(fp32.read(np.arange(12)), bf16.read(np.arange(12)))  # bf16 rounding shows
    calls.clear()
    assert build(split, root, extractor=conv, precision="bf16").directory == bf16.directory and not calls


class ThreadShards:
    """Ranks as threads of one process, with the broadcast and barrier a shared build uses."""

    def __init__(self, rank: int, world: int, hub: dict):
        self.rank, self.world, self.hub = rank, world, hub

    def broadcast(self, value):
        if self.rank == 0:
            self.hub["value"] = value
        self.hub["barrier"].wait()
        value = self.hub["value"]
        self.hub["barrier"].wait()  # everyone has read it before rank 0 may broadcast again
        return value

    def barrier(self):
        self.hub["barrier"].wait()


def build_together(split, root, world: int):
    """Every rank calls ensure_feature_cache at once; returns (the caches, each rank's extractor)."""
    import threading

    hub = {"barrier": threading.Barrier(world, timeout=120)}
    extractors = [CountingExtractor() for _ in range(world)]
    caches, errors = [None] * world, []

    def rank(r):
        try:
            caches[r] = build(split, root, extractor=extractors[r], shards=ThreadShards(r, world, hub))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            hub["barrier"].abort()

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return caches, extractors


def test_ranks_build_one_cache_together_each_extracting_its_share(split, tmp_path):
    """Under torchrun every process used to build the whole cache; now each extracts its share into one file."""
    alone = build(split, tmp_path / "alone", extractor=CountingExtractor())
    caches, extractors = build_together(split, tmp_path / "together", world=2)
    assert [e.calls for e in extractors] == [2, 2]  # 6 images each in batches of 4, not 12 each
    assert len({c.directory for c in caches}) == 1
    assert [p.name for p in (tmp_path / "together").iterdir()] == [caches[0].directory.name]  # nothing left over
    np.testing.assert_array_equal(caches[1].read(np.arange(12)), alone.read(np.arange(12)))
    assert caches[0].meta["complete"] is True and caches[0].meta["fields"] == alone.meta["fields"]
    reused, extractors = build_together(split, tmp_path / "together", world=2)
    assert [e.calls for e in extractors] == [0, 0] and reused[1].directory == caches[0].directory


def test_a_disk_too_small_for_the_cache_is_one_error_not_a_crash(split, root, monkeypatch):
    """The cache file is allocated before the first row is written: without that a full disk under the memory map
    kills the process with SIGBUS, mid-extraction."""
    import errno
    import os

    from zslbench.core.errors import DataError

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    extractor = CountingExtractor()
    with pytest.raises(DataError, match=r"the feature cache needs .* GiB .* free space"):
        build(split, root, extractor=extractor)
    assert extractor.calls == 1  # stopped at the first batch, which gave the geometry
    assert not root.exists() or not any(root.iterdir())  # the half-built folder is gone


def test_rows_are_read_into_a_given_buffer(split, root):
    """FeatureBatches reads rows straight into (pinned) memory: no float32 copy, no extra buffer when sorted."""
    cache = build(split, root, extractor=CountingExtractor())
    everything = cache.read(np.arange(12), dtype=np.float16)
    out = np.empty((3, *cache.shape[1:]), dtype=np.float16)
    assert cache.read(np.array([2, 3, 7]), out=out) is out
    np.testing.assert_array_equal(out, everything[[2, 3, 7]])
    assert cache.read(np.array([7, 2, 2]), out=out) is out  # unsorted, repeated: still lands in ``out``
    np.testing.assert_array_equal(out, everything[[7, 2, 2]])


def test_weights_file_is_keyed_by_its_content(split, tmp_path):
    weights = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, weights)
    first = ExtractorSpec("resnet10t", pretrained=str(weights)).weights_id()
    torch.save({"w": torch.ones(2)}, weights)
    second = ExtractorSpec("resnet10t", pretrained=str(weights)).weights_id()
    assert first.startswith("sha256:") and second.startswith("sha256:") and first != second
    assert ExtractorSpec("resnet10t", seed=3).weights_id() == "random:3"


def test_interrupted_build_leaves_no_cache_and_the_next_call_builds_one(split, root):
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(split, root, extractor=CountingExtractor(fail_after=1))
    assert list(root.iterdir()) == []  # neither the key folder nor the temporary build
    extractor = CountingExtractor()
    cache = build(split, root, extractor=extractor)
    assert extractor.calls == 3 and cache.meta["complete"] is True


def test_killed_builds_and_incomplete_folders_are_not_used(split, root):
    cache = build(split, root, extractor=CountingExtractor())
    key, fields = cache.directory.name, cache.meta["fields"]
    cache.close()
    # a folder under the key whose meta says incomplete, and a temporary build of a dead process
    meta = json.loads((root / key / META_FILE).read_text())
    (root / key / META_FILE).write_text(json.dumps({**meta, "complete": False}))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = root / f".{key}.build-{this_process()[0]}-{int(dead.stdout)}-0-abcd1234"  # as build_in_sibling names it
    stale.mkdir()
    (stale / FEATURES_FILE).write_bytes(b"partial")
    assert open_cache(root / key, fields) is None
    extractor = CountingExtractor()
    rebuilt = build(split, root, extractor=extractor)
    assert extractor.calls == 3 and rebuilt.meta["complete"] is True
    assert not stale.exists()


def test_truncated_features_file_is_rebuilt(split, root):
    cache = build(split, root, extractor=CountingExtractor())
    path = cache.path
    cache.close()
    path.write_bytes(path.read_bytes()[:-10])
    extractor = CountingExtractor()
    build(split, root, extractor=extractor)
    assert extractor.calls == 3


def test_read_only_dataset_dir_falls_back_to_zslbench_cache(split, tmp_path, monkeypatch):
    monkeypatch.setenv("ZSLBENCH_CACHE", str(tmp_path / "elsewhere"))
    real = cache_key_module._writable
    monkeypatch.setattr(cache_key_module, "_writable", lambda folder: "elsewhere" in str(folder) and real(folder))
    assert cache_key_module.cache_root(split.directory) == tmp_path / "elsewhere" / "features"
    monkeypatch.setattr(cache_key_module, "_writable", real)
    assert cache_key_module.cache_root(split.directory) == Path(split.directory) / ".cache" / "features"


def test_read_returns_requested_order_with_repeats(split, root):
    cache = build(split, root, extractor=CountingExtractor())
    everything = cache.read(np.arange(12))
    picked = cache.read(np.array([9, 2, 2, 11, 0]))
    assert picked.dtype == np.float32 and picked.shape == (5, 4, 6)
    np.testing.assert_array_equal(picked, everything[[9, 2, 2, 11, 0]])
    np.testing.assert_array_equal(everything, np.asarray(cache.memmap(), dtype=np.float32))


def batches(cache, split, indices, **kw):
    labels = split.labels[indices]
    seen = np.where(labels < 2, labels, -1)
    options = {"batch_size": 3, "shuffle": False, "drop_last": False, "balanced": False, **kw}
    return FeatureBatches(cache, indices, labels, seen, **options)


def test_eval_batches_cover_each_image_once_in_order(split, root):
    cache = build(split, root, extractor=CountingExtractor())
    source = batches(cache, split, np.arange(6, 12)[::-1].copy(), batch_size=4)
    out = list(source)
    assert len(source) == 2 and [len(b["index"]) for b in out] == [4, 2]
    assert torch.cat([b["index"] for b in out]).tolist() == [11, 10, 9, 8, 7, 6]
    first = out[0]
    # float16 as cached: half the bytes to move to the device, where the model converts them
    assert first["features"].dtype == torch.float16 and first["features"].shape == (4, 4, 6)
    assert first["label"].dtype == torch.int64 and first["seen_label"].tolist() == [-1] * 4
    assert [b["global_size"] for b in out] == [4, 2]
    np.testing.assert_array_equal(first["features"].numpy(), cache.read(np.array([11, 10, 9, 8]), dtype=np.float16))


def test_train_batches_shuffle_by_the_generator_and_drop_last(split, root):
    cache = build(split, root, extractor=CountingExtractor())
    source = batches(cache, split, np.arange(12), batch_size=5, shuffle=True, drop_last=True)
    assert len(source) == 2

    def epoch(seed):
        source.generator.manual_seed(seed)
        return [b["index"].tolist() for b in source]

    assert epoch(1) == epoch(1) and epoch(1) != epoch(2)
    assert all(len(b) == 5 for b in epoch(1)) and len(set(sum(epoch(1), []))) == 10


def test_balanced_batches_draw_distinct_classes(split, root):
    cache = build(split, root, extractor=CountingExtractor())
    # 4 classes, batch 3 → 3 distinct classes × 1 image; batch 8 → 4 classes × 2 images
    small = batches(cache, split, np.arange(12), batch_size=3, shuffle=True, balanced=True)
    for batch in small:
        assert len(set(batch["label"].tolist())) == 3 == len(batch["label"])
    large = batches(cache, split, np.arange(12), batch_size=8, shuffle=True, balanced=True)
    assert len(large) == 1
    labels = next(iter(large))["label"].tolist()
    assert sorted(labels) == [0, 0, 1, 1, 2, 2, 3, 3]
