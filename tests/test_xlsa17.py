"""The xlsa17 reader: PROTOCOL.md §1 counts on the real split files, conventions, and bad inputs.

``write_tiny_dataset`` (also used by test_images / test_wordvec / test_data_inspect) writes a
small but complete xlsa17 directory: 6 classes (4 seen, 2 unseen), 5 attributes, 30 images.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from zslbench.data.xlsa17 import EXPECTED_COUNTS, SPLITS, load_split, remap_image_path, write_split_files
from zslbench.core.errors import DataError

TINY_ATTRIBUTES = ["head colour red", "head colour blue", "body shape round", "tail size long", "wing pattern striped"]
TINY_CLASSES = 6
PER_CLASS = 5


def tiny_locs() -> dict[str, np.ndarray]:
    """0-based splits of the tiny dataset (image i belongs to class i // 5; classes 4, 5 unseen)."""
    seen = range(4)
    trainval = [c * PER_CLASS + k for c in seen for k in range(3)]
    test_seen = [c * PER_CLASS + k for c in seen for k in range(3, PER_CLASS)]
    test_unseen = list(range(4 * PER_CLASS, TINY_CLASSES * PER_CLASS))
    train = list(range(0, 2 * PER_CLASS))  # xlsa17 quirk: train/val also cover test_seen images
    val = list(range(2 * PER_CLASS, 4 * PER_CLASS))
    return {k: np.array(v) for k, v in
            dict(trainval=trainval, test_seen=test_seen, test_unseen=test_unseen, train=train, val=val).items()}


def write_tiny_dataset(directory: Path, images: bool = True, image_size: int = 16, path_prefix: str = "",
                       anchor: str = "images/", seed: int = 0) -> Path:
    """A tiny valid xlsa17 directory (res101.mat with relative paths, attributes.txt, groups, PNGs)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(TINY_CLASSES), PER_CLASS)
    files = [f"{anchor}c{c}/{i}.png" for i, c in enumerate(labels)]
    write_split_files(
        directory, original_att=rng.uniform(0, 100, (TINY_CLASSES, len(TINY_ATTRIBUTES))),
        class_names=[f"c{c}" for c in range(TINY_CLASSES)], labels=labels,
        image_files=[path_prefix + f for f in files], locs=tiny_locs(), attribute_names=TINY_ATTRIBUTES,
        attribute_groups={"head colour": [0, 1], "body shape": [2], "tail size": [3], "wing pattern": [4]})
    if images:
        from PIL import Image

        for path in files:
            target = directory / path
            target.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(target)
    return directory


def rewrite_mat(path: Path, **changes) -> None:
    """Re-save a .mat file with some variables replaced (None removes one)."""
    content = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
    for key, value in changes.items():
        if value is None:
            content.pop(key, None)
        else:
            content[key] = value
    scipy.io.savemat(str(path), content)


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    """Data root holding a tiny dataset directory ``tiny/`` (no images; the reader does not need them)."""
    write_tiny_dataset(tmp_path / "tiny", images=False)
    return tmp_path


# --------------------------------------------------------------------------- real split files
@pytest.mark.parametrize("dataset", ["CUB", "AWA2", "SUN"])
def test_real_counts_match_protocol(shared_data: Path, dataset: str) -> None:
    split = load_split(dataset, shared_data)
    want = EXPECTED_COUNTS[dataset]
    got = {"classes": split.num_classes, "seen": len(split.seen_classes), "unseen": len(split.unseen_classes),
           "attributes": split.num_attributes, "images": split.num_images,
           **{name: len(split.split(name)) for name in SPLITS}}
    assert got == want
    assert split.class_attributes.shape == split.att.shape == split.original_att.shape == (want["classes"],
                                                                                          want["attributes"])
    assert split.labels.dtype == np.int64 and all(v.dtype == np.int64 for v in split.locs.values())


def test_cub_label_convention(shared_data: Path) -> None:
    split = load_split("CUB", shared_data)
    first = split.image_files[0]
    assert first.startswith("CUB_200_2011/images/001.Black_footed_Albatross/")
    assert split.labels[0] == 150
    assert split.class_names[150] == "001.Black_footed_Albatross"
    assert split.class_names[0] == "002.Laysan_Albatross"
    # every image's class folder is its class name
    folders = [path.split("/")[2] for path in split.image_files]
    assert folders == [split.class_names[c] for c in split.labels]


def test_cub_train_val_come_from_sent_splits(shared_data: Path) -> None:
    split = load_split("CUB", shared_data)
    assert len(split.split("train")) == 5875 and len(split.split("val")) == 2946
    assert split.source_files["train_val"] == "sent_splits.mat"


@pytest.mark.parametrize("dataset", ["CUB", "AWA2", "SUN"])
def test_class_attributes_and_splits(shared_data: Path, dataset: str) -> None:
    split = load_split(dataset, shared_data)
    assert (split.original_att >= 0).all()
    norms = np.linalg.norm(split.class_attributes, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(split.att, axis=1), 1.0, atol=1e-5)
    trainval, seen_test, unseen_test = (set(split.split(s).tolist()) for s in ("trainval", "test_seen", "test_unseen"))
    assert not trainval & seen_test and not trainval & unseen_test and not seen_test & unseen_test
    assert len(trainval | seen_test | unseen_test) == split.num_images
    assert not set(split.seen_classes.tolist()) & set(split.unseen_classes.tolist())
    assert np.all(np.diff(split.seen_classes) > 0) and np.all(np.diff(split.unseen_classes) > 0)


def test_awa2_missing_attribute_values_clipped(shared_data: Path) -> None:
    raw = scipy.io.loadmat(str(shared_data / "AWA2" / "att_splits.mat"))["original_att"]
    assert (raw < 0).any()  # the file really has −1 entries
    split = load_split("AWA2", shared_data)
    assert split.original_att.min() == 0.0
    assert split.original_att.dtype == np.float32 and split.class_attributes.dtype == np.float32


@pytest.mark.parametrize(("dataset", "count", "first"), [("CUB", 312, "has_bill_shape::curved_(up_or_down)"),
                                                          ("AWA2", 85, "black"), ("SUN", 102, "sailing/ boating")])
def test_attribute_names_and_groups(shared_data: Path, dataset: str, count: int, first: str) -> None:
    split = load_split(dataset, shared_data)
    assert len(split.attribute_names) == count and split.attribute_names[0] == first
    assert split.attribute_groups
    members = sorted(i for group in split.attribute_groups.values() for i in group)
    assert members and members[-1] < count
    if dataset == "CUB":
        assert len(split.attribute_groups) == 28 and split.attribute_groups["has_bill_shape"] == list(range(9))


def test_fingerprint_is_stable_and_specific(shared_data: Path) -> None:
    first, again = load_split("CUB", shared_data), load_split("CUB", shared_data)
    assert first.fingerprint() == again.fingerprint()
    assert len(first.fingerprint()) == 64
    assert first.fingerprint() != load_split("SUN", shared_data).fingerprint()


def test_val_protocol_never_touches_test_images(shared_data: Path) -> None:
    split = load_split("CUB", shared_data)
    # the xlsa17 quirk the protocol guards against
    covered = set(split.split("train").tolist()) | set(split.split("val").tolist())
    assert covered == set(split.split("trainval").tolist()) | set(split.split("test_seen").tolist())
    protocol = split.val_protocol()
    assert len(protocol["train_classes"]) == 100 and len(protocol["val_classes"]) == 50
    assert not set(protocol["train_classes"].tolist()) & set(protocol["val_classes"].tolist())
    trainval = set(split.split("trainval").tolist())
    assert set(protocol["train"].tolist()) <= trainval and set(protocol["val_unseen"].tolist()) <= trainval
    assert set(protocol["train"].tolist()) | set(protocol["val_unseen"].tolist()) == trainval
    assert set(split.labels[protocol["val_unseen"]].tolist()) == set(protocol["val_classes"].tolist())
    held = split.val_protocol(seen_holdout=0.2, seed=1)
    assert len(held["val_seen"]) > 0 and not set(held["val_seen"].tolist()) & set(held["train"].tolist())
    assert len(held["val_seen"]) + len(held["train"]) == len(protocol["train"])


# --------------------------------------------------------------------------- image paths
@pytest.mark.parametrize(("path", "dataset", "expected"), [
    ("/BS/xian/work/data/CUB_200_2011/images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg",
     "CUB", "CUB_200_2011/images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg"),
    ("Animals_with_Attributes2//JPEGImages/antelope/antelope_10001.jpg", "AWA2",
     "Animals_with_Attributes2/JPEGImages/antelope/antelope_10001.jpg"),
    ("/BS/xian/work/data/Animals_with_Attributes2//JPEGImages/zebra/zebra_10001.jpg", "AWA2",
     "Animals_with_Attributes2/JPEGImages/zebra/zebra_10001.jpg"),
    ("/BS/Deep_Fragments/work/MSc/data/SUN/images/a/abbey/sun_aakbdcgfpksytcwj.jpg", "SUN",
     "images/a/abbey/sun_aakbdcgfpksytcwj.jpg"),
    ("/home/me/images/SUN/images/a/abbey/x.jpg", "SUN", "images/a/abbey/x.jpg"),
    ("C:\\data\\CUB_200_2011\\images\\002.Laysan_Albatross\\y.jpg", "CUB",
     "CUB_200_2011/images/002.Laysan_Albatross/y.jpg"),
    ("images/c0/0.png", "synth", "images/c0/0.png"),
    ("/gen/out/synth-tiny/images/c0/0.png", "synth-tiny", "images/c0/0.png"),
    ("pictures/c0/0.png", "mydata", "pictures/c0/0.png"),
])
def test_remap_image_path_by_anchor(path: str, dataset: str, expected: str) -> None:
    assert remap_image_path(path, dataset) == expected


def test_absolute_path_without_anchor_is_an_error() -> None:
    with pytest.raises(DataError, match="does not contain CUB's anchor 'CUB_200_2011/images/'"):
        remap_image_path("/data/birds/001.Black_footed_Albatross/a.jpg", "CUB")


def test_absolute_xlsa17_paths_in_res101(tmp_path: Path) -> None:
    write_tiny_dataset(tmp_path / "CUB", images=False, path_prefix="/BS/xian/work/data/",
                       anchor="CUB_200_2011/images/")
    split = load_split("CUB", tmp_path, image_root=tmp_path / "pictures")
    assert split.image_files[7] == "CUB_200_2011/images/c1/7.png"
    assert split.image_path(7) == tmp_path / "pictures" / "CUB_200_2011/images/c1/7.png"
    assert split.image_path(7, image_root="/elsewhere") == Path("/elsewhere/CUB_200_2011/images/c1/7.png")


# --------------------------------------------------------------------------- the tiny dataset and synth layout
def test_tiny_dataset_round_trip(tiny: Path) -> None:
    split = load_split("tiny", tiny)
    assert split.num_classes == 6 and split.num_attributes == 5 and split.num_images == 30
    assert split.seen_classes.tolist() == [0, 1, 2, 3] and split.unseen_classes.tolist() == [4, 5]
    assert split.labels.tolist() == np.repeat(np.arange(6), 5).tolist()
    for name, index in tiny_locs().items():
        assert split.split(name).tolist() == index.tolist()
    assert split.attribute_names == TINY_ATTRIBUTES
    assert split.attribute_groups["head colour"] == [0, 1]
    assert split.image_path(0) == tiny / "tiny" / "images/c0/0.png"
    assert not split.has_features
    info = split.dataset_info(np.zeros((5, 3)))
    assert info.num_classes == 6 and info.attribute_groups[0] == [0, 1]


def test_synth_layout_loads_without_special_cases(tmp_path: Path) -> None:
    write_tiny_dataset(tmp_path / "synth", images=False)
    (tmp_path / "synth" / "synth_meta.json").write_text(json.dumps({"counts": {"classes": 6}}))
    (tmp_path / "synth" / "masks").mkdir()
    split = load_split("synth", tmp_path)
    assert split.dataset == "synth" and split.attribute_names[0] == "head colour red"
    assert split.image_files[0] == "images/c0/0.png"


def test_features_are_detected_without_loading(tiny: Path) -> None:
    res101 = tiny / "tiny" / "res101.mat"
    rewrite_mat(res101, features=np.ones((8, 30)))
    assert load_split("tiny", tiny).has_features


def test_missing_train_val_is_reported_by_split(tiny: Path) -> None:
    rewrite_mat(tiny / "tiny" / "att_splits.mat", train_loc=None, val_loc=None)
    split = load_split("tiny", tiny)
    assert not split.has_split("val") and split.has_split("trainval")
    with pytest.raises(DataError, match="dataset tiny has no 'val' split"):
        split.split("val")
    with pytest.raises(DataError, match="'val' protocol is unavailable"):
        split.val_protocol()
    with pytest.raises(DataError, match="unknown split 'testing'"):
        split.split("testing")


def test_res101_meta_npz_is_read(tiny: Path) -> None:
    directory = tiny / "tiny"
    (directory / "res101.mat").unlink()
    np.savez(directory / "res101_meta.npz", labels=np.repeat(np.arange(6), 5),
             image_files=np.array([f"images/c{i // 5}/{i}.png" for i in range(30)]),
             **{f"{k}_loc": v for k, v in tiny_locs().items()})
    split = load_split("tiny", tiny)
    assert split.source_files["images"] == "res101_meta.npz" and split.labels[29] == 5


def test_no_names_file_gives_placeholder_names(tiny: Path) -> None:
    (tiny / "tiny" / "attributes.txt").unlink()
    (tiny / "tiny" / "attribute_groups.json").unlink()
    split = load_split("tiny", tiny)
    assert split.attribute_names == [f"attr_{i}" for i in range(5)] and split.attribute_groups == {}


# --------------------------------------------------------------------------- bad inputs
def test_unknown_dataset_lists_what_exists(tiny: Path) -> None:
    with pytest.raises(DataError, match=r"no dataset directory 'NOPE' .*it holds: tiny\).*zslbench data fetch xlsa17"):
        load_split("NOPE", tiny)
    with pytest.raises(DataError, match="zslbench data synth"):
        load_split("synth", tiny)
    with pytest.raises(DataError, match="data root .* does not exist"):
        load_split("CUB", tiny / "absent")


def test_missing_att_splits(tiny: Path) -> None:
    (tiny / "tiny" / "att_splits.mat").unlink()
    with pytest.raises(DataError, match=r"att_splits\.mat is missing; get the xlsa17 split files"):
        load_split("tiny", tiny)


def test_missing_image_list(tiny: Path) -> None:
    (tiny / "tiny" / "res101.mat").unlink()
    with pytest.raises(DataError, match=r"has neither res101\.mat nor res101_meta\.npz"):
        load_split("tiny", tiny)


@pytest.mark.parametrize("name", ["att_splits.mat", "res101.mat"])
def test_corrupt_mat_file(tiny: Path, name: str) -> None:
    (tiny / "tiny" / name).write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(DataError, match=re.escape(name) + " is unreadable or corrupt .*re-download"):
        load_split("tiny", tiny)


@pytest.mark.parametrize("field", ["original_att", "test_unseen_loc", "allclasses_names"])
def test_missing_field(tiny: Path, field: str) -> None:
    rewrite_mat(tiny / "tiny" / "att_splits.mat", **{field: None})
    with pytest.raises(DataError, match=f"lacks the field '{field}'"):
        load_split("tiny", tiny)


def test_missing_labels_in_res101(tiny: Path) -> None:
    rewrite_mat(tiny / "tiny" / "res101.mat", labels=None)
    with pytest.raises(DataError, match="res101.mat lacks the field 'labels'"):
        load_split("tiny", tiny)


def test_index_out_of_range(tiny: Path) -> None:
    rewrite_mat(tiny / "tiny" / "att_splits.mat", test_unseen_loc=np.array([[21.0], [31.0]]))
    message = r"split 'test_unseen' has image index 31 \(1-based\) out of range for the 30 images"
    with pytest.raises(DataError, match=message):
        load_split("tiny", tiny)


def test_overlapping_splits(tiny: Path) -> None:
    locs = tiny_locs()
    test_seen = np.concatenate([locs["test_seen"], locs["trainval"][:2]]) + 1.0
    rewrite_mat(tiny / "tiny" / "att_splits.mat", test_seen_loc=test_seen.reshape(-1, 1))
    with pytest.raises(DataError, match="splits 'trainval' and 'test_seen' overlap in 2 images"):
        load_split("tiny", tiny)


def test_attribute_class_count_mismatch(tiny: Path) -> None:
    path = tiny / "tiny" / "att_splits.mat"
    names = scipy.io.loadmat(str(path))["allclasses_names"][:5]
    rewrite_mat(path, allclasses_names=names)
    with pytest.raises(DataError, match="att has 6 class columns but allclasses_names lists 5 classes"):
        load_split("tiny", tiny)


def test_attribute_names_count_mismatch(tiny: Path) -> None:
    (tiny / "tiny" / "attributes.txt").write_text("1 red\n2 blue\n")
    with pytest.raises(DataError, match=r"attributes\.txt names 2 attributes but att_splits\.mat has 5"):
        load_split("tiny", tiny)


def test_nan_in_attributes(tiny: Path) -> None:
    path = tiny / "tiny" / "att_splits.mat"
    original = scipy.io.loadmat(str(path))["original_att"]
    original[1, 2] = np.nan
    rewrite_mat(path, original_att=original)
    with pytest.raises(DataError, match="original_att holds 1 NaN/inf values"):
        load_split("tiny", tiny)


def test_labels_out_of_range(tiny: Path) -> None:
    labels = np.repeat(np.arange(6), 5).astype(float) + 1
    labels[-1] = 9
    rewrite_mat(tiny / "tiny" / "res101.mat", labels=labels.reshape(-1, 1))
    with pytest.raises(DataError, match="labels span 0..8 .* but there are 6 classes"):
        load_split("tiny", tiny)


def test_seen_class_without_trainval_images(tiny: Path) -> None:
    locs = tiny_locs()
    trainval = locs["trainval"][locs["trainval"] // PER_CLASS != 3]  # class c3 keeps only test_seen images
    rewrite_mat(tiny / "tiny" / "att_splits.mat", trainval_loc=(trainval + 1.0).reshape(-1, 1))
    with pytest.raises(DataError, match="seen class 'c3' .* has test_seen images but no trainval image"):
        load_split("tiny", tiny)


def test_bad_attribute_groups(tiny: Path) -> None:
    (tiny / "tiny" / "attribute_groups.json").write_text(json.dumps({"groups": {"g": [0, 7]}}))
    with pytest.raises(DataError, match="group 'g' has indices outside 0..4"):
        load_split("tiny", tiny)
