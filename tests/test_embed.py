"""Attribute word vectors from word-vector files (zslbench.data.embed) and `zslbench data embed`."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from zslbench.data.embed import (
    build_attribute_vectors,
    embed_phrases,
    read_word_vectors,
    save_npy_atomic,
)
from zslbench.data.phrases import clean_phrases
from zslbench.core.errors import DataError, UserError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: Real CUB attribute names; the last one's words are all left out of the test vector files.
CUB_NAMES = [
    "has_bill_shape::curved_(up_or_down)",
    "has_wing_color::grey",
    "has_upperparts_color::blue",
    "has_size::large_(16_-_32_in)",
    "has_bill_shape::spatulate",
    "has_head_pattern::eyering",
]
ALL_OOV_ROW = 5  # "head pattern eyering": none of its words is in the file
DIM = 4


def _vocabulary() -> dict[str, np.ndarray]:
    """Made-up vectors for the words of CUB_NAMES except 'curved' and row 5's words."""
    words = sorted({w for p in clean_phrases("CUB", CUB_NAMES[:ALL_OOV_ROW]) for w in p} - {"curved"})
    rng = np.random.default_rng(0)
    table = {w: rng.normal(size=DIM).astype(np.float32) for w in words}
    # unrelated words around them, as a real file has
    table.update({f"filler{i}": rng.normal(size=DIM).astype(np.float32) for i in range(5)})
    return table


def _expected(table: dict[str, np.ndarray]) -> np.ndarray:
    rows = []
    for words in clean_phrases("CUB", CUB_NAMES):
        row = np.zeros(DIM, dtype=np.float64)
        for w in words:
            if w in table:
                row += table[w]
        rows.append(row)
    return np.array(rows).astype(np.float32)


def write_word2vec_binary(path: Path, table: dict[str, np.ndarray], newline: bool = True) -> Path:
    with open(path, "wb") as handle:
        handle.write(f"{len(table)} {DIM}\n".encode())
        for word, vector in table.items():
            handle.write(word.encode() + b" " + vector.astype("<f4").tobytes() + (b"\n" if newline else b""))
    return path


def write_text(path: Path, table: dict[str, np.ndarray], header: bool) -> Path:
    lines = [f"{len(table)} {DIM}"] if header else []
    lines += [word + " " + " ".join(repr(float(v)) for v in vector) for word, vector in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def table() -> dict[str, np.ndarray]:
    return _vocabulary()


@pytest.mark.parametrize("kind", ["binary", "binary-no-newline", "binary-gz", "word2vec-text", "glove-text"])
def test_phrase_vectors_are_sums_of_word_vectors(tmp_path: Path, table, kind: str) -> None:
    if kind.startswith("binary"):
        path = write_word2vec_binary(tmp_path / "v.bin", table, newline=kind != "binary-no-newline")
        if kind == "binary-gz":
            gz = tmp_path / "v.bin.gz"
            gz.write_bytes(gzip.compress(path.read_bytes()))
            path = gz
        expected_format = "word2vec-binary"
    else:
        path = write_text(tmp_path / "v.txt", table, header=kind == "word2vec-text")
        expected_format = kind
    result = embed_phrases(clean_phrases("CUB", CUB_NAMES), path)
    assert result.file_format == expected_format
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (len(CUB_NAMES), DIM)
    np.testing.assert_allclose(result.vectors, _expected(table), rtol=0, atol=1e-6)
    assert result.oov_words == ["curved", "eyering", "head", "pattern"]
    assert result.empty_rows == [ALL_OOV_ROW]
    assert not result.vectors[ALL_OOV_ROW].any()
    # "bill shape curved" = bill + shape (curved skipped); spatulate was cleaned to "broad"
    np.testing.assert_allclose(result.vectors[0], table["bill"] + table["shape"], atol=1e-6)
    np.testing.assert_allclose(result.vectors[4], table["bill"] + table["shape"] + table["broad"], atol=1e-6)


def test_only_the_needed_words_are_kept(tmp_path: Path, table) -> None:
    path = write_word2vec_binary(tmp_path / "v.bin", table)
    found = read_word_vectors(path, {"wing", "gray", "absent"})
    assert sorted(found.vectors) == ["gray", "wing"] and found.dim == DIM
    np.testing.assert_array_equal(found.vectors["wing"], table["wing"])


def test_binary_with_words_beyond_a_chunk_boundary(tmp_path: Path, monkeypatch) -> None:
    import zslbench.data.embed as embed

    monkeypatch.setattr(embed, "CHUNK_BYTES", 7)  # forces refills in the middle of words and vectors
    rng = np.random.default_rng(1)
    table = {f"w{i}": rng.normal(size=DIM).astype(np.float32) for i in range(50)}
    path = write_word2vec_binary(tmp_path / "v.bin", table)
    found = read_word_vectors(path, {"w0", "w31", "w49"})
    for word in ("w0", "w31", "w49"):
        np.testing.assert_array_equal(found.vectors[word], table[word])


def test_wrong_dimension_line_is_rejected(tmp_path: Path, table) -> None:
    path = write_text(tmp_path / "v.txt", table, header=False)
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("wing "))
    lines[index] = "wing 1.0 2.0"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"line {index + 1} \('wing'\): 2 values but the file's vectors have {DIM}"):
        embed_phrases(clean_phrases("CUB", CUB_NAMES), path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\x00\x01 garbage \xff\xfe\n", "neither word2vec"),
        (b"3 4\nab", "truncated"),
    ],
)
def test_malformed_vector_files_are_rejected(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_word_vectors(path, {"ab"})


def test_missing_vector_file_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist; pass --vectors"):
        read_word_vectors(tmp_path / "nope.bin", {"a"})


# --------------------------------------------------------------------------- writing
def test_save_is_atomic_and_refuses_to_overwrite_a_different_file(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "sub" / "w2v.npy"
    first = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert save_npy_atomic(out, first) == "written"
    assert save_npy_atomic(out, first.copy()) == "unchanged"
    second = first + 1
    with pytest.raises(UserError, match="differs from the new vectors; pass --force"):
        save_npy_atomic(out, second)
    np.testing.assert_array_equal(np.load(out), first)

    def broken_save(handle, array):  # dies after writing part of the file
        handle.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(DataError, match="disk full"):
        save_npy_atomic(out, second, force=True)
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(out), first)  # the old file is intact
    assert sorted(p.name for p in out.parent.iterdir()) == ["w2v.npy"]  # no temporary left behind
    assert save_npy_atomic(out, second, force=True) == "written"
    np.testing.assert_array_equal(np.load(out), second)


# --------------------------------------------------------------------------- the dataset command
def _tiny_cub(root: Path) -> Path:
    """A tmp 'CUB' directory in xlsa17 layout with the six real attribute names."""
    from zslbench.data.xlsa17 import write_split_files

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 3)
    return write_split_files(
        root / "CUB", original_att=rng.uniform(0, 100, size=(4, len(CUB_NAMES))),
        class_names=[f"{i:03d}.Bird_{i}" for i in range(4)], labels=labels,
        image_files=[f"CUB_200_2011/images/{labels[i]:03d}.Bird/{i}.jpg" for i in range(12)],
        locs={"trainval": np.array([0, 1, 3, 4]), "test_seen": np.array([2, 5]),
              "test_unseen": np.arange(6, 12)},
        attribute_names=CUB_NAMES)


def _cli(argv: list[str]) -> int:
    from zslbench.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_embed_writes_out_and_refuses_to_overwrite(tmp_path: Path, table, capsys) -> None:
    _tiny_cub(tmp_path / "data")
    vectors = write_word2vec_binary(tmp_path / "v.bin", table)
    out = tmp_path / "out" / "cub_w2v.npy"
    argv = ["data", "embed", "--dataset", "CUB", "--data-root", str(tmp_path / "data"), "--vectors", str(vectors)]
    assert _cli(argv + ["--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), _expected(table), atol=1e-6)
    printed = capsys.readouterr().out
    assert "1 attribute(s) have no known word" in printed and "4 out-of-vocabulary" in printed
    assert not (tmp_path / "data" / "CUB" / "attribute_w2v.npy").exists()  # --out means only there

    other = write_word2vec_binary(tmp_path / "w.bin", {w: v + 1 for w, v in table.items()})
    assert _cli(["data", "embed", "--dataset", "CUB", "--data-root", str(tmp_path / "data"),
                 "--vectors", str(other), "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert _cli(argv + ["--out", str(out), "--force", "--vectors", str(other)]) == 0

    assert _cli(argv) == 0  # default: next to the split files
    np.testing.assert_allclose(np.load(tmp_path / "data" / "CUB" / "attribute_w2v.npy"), _expected(table), atol=1e-6)


def test_embed_needs_attribute_names(tmp_path: Path, table) -> None:
    directory = _tiny_cub(tmp_path)
    (directory / "attributes.txt").unlink()
    with pytest.raises(DataError, match="no attribute names .* attributes.txt from CUB_200_2011.tgz"):
        build_attribute_vectors("CUB", tmp_path, write_word2vec_binary(tmp_path / "v.bin", table),
                                out=tmp_path / "o.npy")


# --------------------------------------------------------------------------- real files (../shared/data)
def _shared_or_skip() -> Path:
    if not (SHARED_DATA / "CUB" / "att_splits.mat").is_file():
        pytest.skip("../shared/data is absent: real-data embedding checks skipped")
    return SHARED_DATA


def test_real_dataset_dir_with_out_in_tmp(tmp_path: Path, table) -> None:
    root = _shared_or_skip()
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (root / "CUB").iterdir())
    out = tmp_path / "cub.npy"
    result = build_attribute_vectors("CUB", root, write_word2vec_binary(tmp_path / "v.bin", table), out=out)
    assert np.load(out).shape == (312, DIM) and result.status == "written"
    wing_gray = result.phrases.index(["wing", "color", "gray"])
    np.testing.assert_allclose(result.vectors[wing_gray], table["wing"] + table["color"] + table["gray"], atol=1e-6)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (root / "CUB").iterdir()) == before


def test_shipped_vectors_are_sums_over_our_cleaned_words() -> None:
    """Linearity on the real arrays: 'X color c1' - 'X color c2' (CUB) equals the single-word rows
    c1 - c2 (AWA2) for every CUB part X and colour pair — exact only if both files sum the same
    GoogleNews vectors over the words our cleaning yields (grey→gray included)."""
    root = _shared_or_skip()
    cub = np.load(root / "CUB" / "attribute_w2v.npy").astype(np.float64)
    awa = np.load(root / "AWA2" / "attribute_w2v.npy").astype(np.float64)
    cub_names = [line.split(" ", 1)[1] for line in (root / "CUB" / "attributes.txt").read_text().splitlines()]
    awa_names = [line.split("\t", 1)[1] for line in (root / "AWA2" / "predicates.txt").read_text().splitlines()]
    cub_rows = {" ".join(words): i for i, words in enumerate(clean_phrases("CUB", cub_names))}
    awa_rows = {" ".join(words): i for i, words in enumerate(clean_phrases("AWA2", awa_names))}
    colours = [c for c in ("black", "white", "blue", "brown", "gray", "orange", "red", "yellow") if c in awa_rows]
    checked = 0
    for part in ("wing", "upper parts", "back", "breast", "leg", "bill", "crown"):
        for c1, c2 in zip(colours, colours[1:]):
            difference = cub[cub_rows[f"{part} color {c1}"]] - cub[cub_rows[f"{part} color {c2}"]]
            np.testing.assert_allclose(difference, awa[awa_rows[c1]] - awa[awa_rows[c2]], rtol=0, atol=1e-6)
            checked += 1
    assert checked == 49
