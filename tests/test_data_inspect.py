"""``data info`` / ``data check``: summaries, end-to-end checks, and the CLI commands that call them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from test_xlsa17 import write_tiny_dataset
from zslbench.cli import main
from zslbench.data.inspect import check_dataset, dataset_summary, print_summary

REQUIRED_KEYS = {"dataset", "directory", "classes", "seen", "unseen", "attributes", "images", "trainval", "train",
                 "val", "test_seen", "test_unseen", "images_missing", "features", "word_vectors", "attribute_groups"}


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, force_terminal=False), buffer


@pytest.fixture()
def tiny_root(tmp_path: Path) -> Path:
    write_tiny_dataset(tmp_path / "synth", image_size=12)
    return tmp_path


def test_cub_summary(shared_data: Path) -> None:
    summary = dataset_summary("CUB", shared_data)
    assert REQUIRED_KEYS <= summary.keys()
    assert {k: summary[k] for k in ("classes", "seen", "unseen", "attributes", "images", "trainval", "train", "val",
                                    "test_seen", "test_unseen")} == {
        "classes": 200, "seen": 150, "unseen": 50, "attributes": 312, "images": 11788, "trainval": 7057,
        "train": 5875, "val": 2946, "test_seen": 1764, "test_unseen": 2967}
    assert summary["images_missing"] == 11788
    assert summary["features"] is False and summary["word_vectors"] == [312, 300]
    assert summary["attribute_groups"] == 28
    json.dumps(summary)  # JSON-ready


def test_summary_of_a_complete_dataset_and_its_table(tiny_root: Path) -> None:
    summary = dataset_summary("synth", tiny_root)
    assert summary["images_missing"] == 0 and summary["images"] == 30 and summary["word_vectors"] is None
    (tiny_root / "synth" / "images" / "c5" / "29.png").unlink()
    summary = dataset_summary("synth", tiny_root)
    assert summary["images_missing"] == 1
    console, buffer = _console()
    print_summary(summary, console)
    text = buffer.getvalue()
    assert "images missing" in text and "test_unseen" in text and "synth" in text


def test_summary_without_train_val(tiny_root: Path) -> None:
    from test_xlsa17 import rewrite_mat

    rewrite_mat(tiny_root / "synth" / "att_splits.mat", train_loc=None, val_loc=None)
    summary = dataset_summary("synth", tiny_root)
    assert summary["train"] is None and summary["val"] is None


def test_check_ok_on_a_complete_dataset(tiny_root: Path) -> None:
    console, buffer = _console()
    report = check_dataset("synth", tiny_root, console=console)
    assert report.ok and report.problems == [] and report.checked == 30
    assert report.counts["test_unseen"] == 10
    assert "OK" in buffer.getvalue() and "30 images present and decodable" in buffer.getvalue()


def test_check_finds_a_truncated_image(tiny_root: Path) -> None:
    broken = tiny_root / "synth" / "images" / "c2" / "11.png"
    broken.write_bytes(broken.read_bytes()[:30])
    console, buffer = _console()
    report = check_dataset("synth", tiny_root, console=console)
    assert not report.ok and len(report.corrupt) == 1
    assert report.problems[0].startswith("1 of 30 images cannot be decoded (e.g. images/c2/11.png")
    assert "problem" in buffer.getvalue() and "images/c2/11.png" in buffer.getvalue()
    # without decoding only presence is checked
    assert check_dataset("synth", tiny_root, decode=False).ok


def test_check_finds_a_missing_image(tiny_root: Path) -> None:
    (tiny_root / "synth" / "images" / "c0" / "1.png").unlink()
    report = check_dataset("synth", tiny_root, decode=False)
    assert not report.ok and report.missing == [str(tiny_root / "synth" / "images" / "c0" / "1.png")]
    assert "1 of 30 images missing under the image root" in report.problems[0]
    assert "paths start at images/" in report.problems[0] and "zslbench data synth" in report.problems[0]


def test_check_uses_another_image_root(tiny_root: Path, tmp_path: Path) -> None:
    report = check_dataset("synth", tiny_root, image_root=tmp_path / "nowhere", decode=False)
    assert len(report.missing) == 30


def test_check_compares_synth_meta_counts(tiny_root: Path) -> None:
    meta = {"counts": {"classes": 6, "seen": 4, "unseen": 2, "trainval": 13}}
    (tiny_root / "synth" / "synth_meta.json").write_text(json.dumps(meta))
    report = check_dataset("synth", tiny_root)
    assert not report.ok and report.problems == ["trainval: found 12, expected 13"]


def test_check_compares_protocol_counts(tmp_path: Path) -> None:
    write_tiny_dataset(tmp_path / "SUN", image_size=8)
    report = check_dataset("SUN", tmp_path, decode=False)
    assert not report.ok
    assert "classes: found 6, expected 717" in report.problems
    assert "test_unseen: found 10, expected 1440" in report.problems


# --------------------------------------------------------------------------- CLI
def test_cli_data_info_json(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "info", "--dataset", "CUB", "--data-root", str(shared_data), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert {"classes", "seen", "unseen", "attributes", "trainval", "test_seen", "test_unseen",
            "images_missing"} <= summary.keys()
    assert summary["trainval"] == 7057 and summary["images_missing"] == 11788


def test_cli_data_info_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "CUB").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "info", "--dataset", "NOPE", "--data-root", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: no dataset directory 'NOPE'") and "it holds: CUB" in err
