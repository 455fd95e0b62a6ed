"""Fuzzing the two parsers of user files: the xlsa17 ``.mat`` reader and the config loader.

Property: whatever the input — random bytes, a damaged real file, or a well-formed file holding
random fields, shapes, dtypes, strings, cells, structs, NaN and out-of-range indices — the result
is either a clean one-line user error (:class:`~zslbench.core.errors.UserError`) or a valid object:
a :class:`~zslbench.data.xlsa17.SplitInfo` whose invariants hold, or a
:class:`~zslbench.config.Config` that round-trips through its YAML dump.

The ``.mat`` cases start from the tiny dataset of ``test_xlsa17`` (6 classes, 5 attributes, 30 images).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from test_xlsa17 import write_tiny_dataset
from zslbench.config import SECTIONS, Config, resolve
from zslbench.data.xlsa17 import REQUIRED_SPLITS, SplitInfo, check_mat_elements, load_split
from zslbench.core.errors import UserError

NAME = "tiny"
MAT_FILES = ("att_splits.mat", "res101.mat")
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- the .mat reader
@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """(data root holding ``tiny/``, the intact bytes of its .mat files): each example rewrites one file."""
    root = tmp_path_factory.mktemp("fuzz-data")
    write_tiny_dataset(root / NAME, images=False)
    return root, {name: (root / NAME / name).read_bytes() for name in MAT_FILES}


def load_or_clean_error(root: Path) -> SplitInfo | None:
    """``load_split``: a valid SplitInfo, or None after a clean one-line UserError; anything else fails."""
    try:
        split = load_split(NAME, root)
    except UserError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        return None
    assert_valid(split)
    return split


def assert_valid(split: SplitInfo) -> None:
    """The invariants every consumer of a SplitInfo relies on."""
    classes, attributes = split.att.shape
    assert split.original_att.shape == split.class_attributes.shape == (classes, attributes)
    assert len(split.class_names) == classes and len(split.attribute_names) == attributes
    assert np.isfinite(split.class_attributes).all() and (split.original_att >= 0).all()
    assert (np.abs(split.class_attributes).sum(axis=1) > 0).all()  # no all-zero class vector
    images = len(split.labels)
    assert split.labels.dtype == np.int64 and len(split.image_files) == images
    assert ((split.labels >= 0) & (split.labels < classes)).all()
    for name, index in split.locs.items():
        assert index.dtype == np.int64 and ((index >= 0) & (index < images)).all(), name
    for first in REQUIRED_SPLITS:
        for second in REQUIRED_SPLITS:
            assert first == second or not np.intersect1d(split.locs[first], split.locs[second]).size
    seen, unseen = split.seen_classes, split.unseen_classes
    assert seen.size and unseen.size and not np.intersect1d(seen, unseen).size
    assert np.array_equal(np.union1d(seen, unseen), np.arange(classes))
    assert all(0 <= i < attributes for members in split.attribute_groups.values() for i in members)
    split.fingerprint()


def write_and_load(root: Path, originals: dict[str, bytes], name: str, data: bytes) -> SplitInfo | None:
    for file_name, content in originals.items():
        (root / NAME / file_name).write_bytes(content)
    (root / NAME / name).write_bytes(data)
    return load_or_clean_error(root)


def flipped(draw: st.DrawFn, data: bytes, start: int = 0) -> bytes:
    """``data`` with 1–8 bytes at or after ``start`` replaced by random values."""
    out = bytearray(data)
    for position, value in draw(st.lists(st.tuples(st.integers(start, len(out) - 1), st.integers(0, 255)),
                                         min_size=1, max_size=8)):
        out[position] = value
    return bytes(out)


def compressed_and_damaged(draw: st.DrawFn, original: bytes) -> bytes:
    """The file saved with compression, one variable's *decompressed* bytes damaged, then recompressed
    (so zlib's checksum passes and the damage reaches the MAT parser, as in a badly written file)."""
    content = {k: v for k, v in scipy.io.loadmat(io.BytesIO(original)).items() if not k.startswith("__")}
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, content, do_compression=True)
    data, position, parts = buffer.getvalue(), 128, []
    while position < len(data):
        _, size = struct.unpack_from("<II", data, position)
        parts.append(zlib.decompress(data[position + 8:position + 8 + size]))
        position += 8 + size
    which = draw(st.integers(0, len(parts) - 1))
    parts[which] = flipped(draw, parts[which])
    return data[:128] + b"".join(struct.pack("<II", 15, len(z)) + z for z in map(zlib.compress, parts))


@st.composite
def damaged_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """Random bytes, a valid header with random content, a truncated file, one with flipped bytes
    (a flip in a tag's type byte used to crash scipy's reader), or a damaged compressed file."""
    kind = draw(st.sampled_from(["random", "header", "truncated", "flipped", "flipped", "compressed"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "header":
        return original[:128] + draw(st.binary(max_size=600))
    if kind == "truncated":
        return original[: draw(st.integers(0, len(original) - 1))]
    if kind == "compressed":
        return compressed_and_damaged(draw, original)
    return flipped(draw, original, start=128)


@FUZZ
@given(data=st.data(), name=st.sampled_from(MAT_FILES))
@example(data=None, name="att_splits.mat")  # the intact file loads
def test_random_bytes_give_a_clean_error_or_a_valid_split(dataset, data, name: str) -> None:
    root, originals = dataset
    content = originals[name] if data is None else data.draw(damaged_bytes(originals[name]))
    split = write_and_load(root, originals, name, content)
    if data is None:
        assert split is not None and split.num_classes == 6


# ---- well-formed .mat files holding random structures
INDEX_LIKE = hnp.arrays(np.float64, st.tuples(st.integers(0, 12), st.sampled_from([1, 2])),
                        elements=st.integers(-2, 33).map(float))
NUMERIC = hnp.arrays(st.sampled_from([np.float64, np.float32, np.int32, np.uint8, np.int64, np.bool_, np.complex128]),
                     hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7))
TEXTS = st.lists(st.text(max_size=6), max_size=8)
MAT_VALUES = st.one_of(
    INDEX_LIKE,
    NUMERIC,
    hnp.arrays(np.float64, st.tuples(st.integers(0, 7), st.integers(0, 8)),
               elements=st.one_of(st.floats(-1, 120), st.sampled_from([np.nan, np.inf, 0.0]))),
    TEXTS.map(lambda xs: _cell(xs)),  # a cell of strings
    TEXTS.filter(bool).map(lambda xs: np.array(xs)),  # a char matrix
    st.lists(st.one_of(st.integers(-5, 40), st.text(max_size=4)), max_size=5).map(
        lambda xs: np.array(xs, dtype=object)),  # a mixed cell
    st.fixed_dictionaries({"a": NUMERIC, "b": st.text(max_size=4)}),  # a struct
    st.integers(-5, 40), st.floats(), st.text(max_size=8),
    st.just(np.zeros((0, 0))), st.just(np.array([])),
)


def _cell(strings: list[str]) -> np.ndarray:
    cell = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[i, 0] = text
    return cell


@st.composite
def edited_content(draw: st.DrawFn, content: dict[str, Any]) -> dict[str, Any]:
    """The file's variables with some removed, replaced by random values or perturbed index-wise."""
    out = {k: v for k, v in content.items() if not k.startswith("__")}
    names = sorted(out) + ["extra_field"]
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True)):
        action = draw(st.sampled_from(["remove", "replace", "perturb"]))
        if action == "remove":
            out.pop(name, None)
        elif action == "replace" or name not in out or out[name].dtype == object:
            out[name] = draw(MAT_VALUES)
        else:  # a plausible mistake in a numeric field: shifted, shortened, one entry changed
            array = np.array(out[name], dtype=np.float64)
            if array.size:
                flat = array.ravel()
                flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([0.0, -1.0, 31.0, 1e9, 2.5, np.nan]))
                array = flat.reshape(array.shape)
            out[name] = array[: draw(st.integers(0, len(array)))] if draw(st.booleans()) else array
    return out


@FUZZ
@given(data=st.data(), name=st.sampled_from(MAT_FILES))
def test_random_structures_give_a_clean_error_or_a_valid_split(dataset, data, name: str) -> None:
    root, originals = dataset
    content = data.draw(edited_content(scipy.io.loadmat(io.BytesIO(originals[name]))))
    buffer = io.BytesIO()
    try:
        scipy.io.savemat(buffer, content, do_compression=data.draw(st.booleans()))
    except Exception:  # noqa: BLE001 — a structure MATLAB files cannot hold is not an input we can get
        return
    write_and_load(root, originals, name, buffer.getvalue())
    check_mat_elements(root / NAME / name)  # a well-formed file is never mistaken for a damaged one


# --------------------------------------------------------------------------- the config loader
VALID_KEYS = sorted(resolve().flat())  # every dotted key of the default (SVIP) config
KEYS = st.one_of(st.sampled_from(VALID_KEYS), st.sampled_from(["model.name", "preset", "ablations", "train", "x.y",
                                                               "train.lr.x", "", "model.hidden"]),
                 st.text(max_size=12))
YAML_PIECES = st.sampled_from(["[", "]", "{", "}", ":", ",", "-", "!!str", "!!binary", "&a", "*a", "~", "null", "yes",
                               "0x1F", "1e400", ".inf", "-.nan", "1_000", "0o17", "'", '"', "#", "|", ">", " ", "\t",
                               "9" * 30, "2020-01-01", "svip", "vit", "CUB", "tiny", "[0.9, 0.999]"])
RAW_VALUES = st.one_of(st.text(max_size=16), st.lists(YAML_PIECES, max_size=6).map("".join),
                       st.integers().map(str), st.floats().map(repr))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
DOCUMENTS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4)),
    max_leaves=16)


@st.composite
def config_documents(draw: st.DrawFn) -> Any:
    """Config-shaped mappings (real section and key names, random values) or any YAML value."""
    if draw(st.booleans()):
        return draw(DOCUMENTS)
    document: dict[Any, Any] = {}
    for key in draw(st.lists(st.sampled_from([k for k in VALID_KEYS if "." in k] + ["model.name", "bogus.key"]),
                             max_size=6)):
        section, name = key.split(".", 1)
        document.setdefault(section, {})[name] = draw(st.one_of(SCALARS, st.lists(SCALARS, max_size=3)))
    for top in draw(st.lists(st.sampled_from(["preset", "ablations", *SECTIONS]), max_size=2)):
        document[top] = draw(st.one_of(SCALARS, st.lists(SCALARS, max_size=2)))
    return document


def assert_round_trip(cfg: Config) -> None:
    """A valid config survives its own YAML dump unchanged (what resolved.yaml / --config rely on)."""
    assert Config.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


def resolve_or_clean_error(**kwargs: Any) -> Config | None:
    try:
        cfg = resolve(**kwargs)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return None
    assert_round_trip(cfg)
    assert resolve(base=cfg) == cfg
    return cfg


@FUZZ
@given(items=st.lists(st.tuples(KEYS, RAW_VALUES), min_size=1, max_size=4))
@example(items=[("train.betas", "[" * 3000 + "]" * 3000)])  # nested too deeply for the YAML parser
@example(items=[("train.epochs", "9" * 400)])  # an integer no float can hold
def test_set_overrides_give_a_clean_error_or_a_round_tripping_config(items: list[tuple[str, str]]) -> None:
    resolve_or_clean_error(overrides=[f"{key}={value}" for key, value in items])


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config") / "resolved.yaml"


def load_config_or_clean_error(path: Path, data: bytes) -> Config | None:
    path.write_bytes(data)
    try:
        cfg = Config.from_yaml(path)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc), repr(str(exc))
        return None
    assert_round_trip(cfg)
    resolve_or_clean_error(base=cfg)  # the --config path: validation on top
    return cfg


@FUZZ
@given(document=config_documents())
@example(document={"model": 3})
@example(document={"model": {"name": [1]}, "train": {"epochs": 2}})
@example(document={1: {"x": None}, None: 2})
def test_yaml_documents_give_a_clean_error_or_a_round_tripping_config(config_path: Path, document: Any) -> None:
    load_config_or_clean_error(config_path, yaml.safe_dump(document, allow_unicode=True).encode())


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                      st.lists(YAML_PIECES, max_size=20).map(lambda xs: "".join(xs).encode())))
@example(data=b"\xff\xfe\x00train: 1")
@example(data=("train: " + "[" * 3000 + "]" * 3000).encode())
def test_random_config_files_give_a_clean_error_or_a_round_tripping_config(config_path: Path, data: bytes) -> None:
    load_config_or_clean_error(config_path, data)


def test_a_resolved_config_loads_back(config_path: Path) -> None:
    """The fuzzed loaders accept what a run writes (so the properties above are not vacuous)."""
    cfg = resolve(model="svip", dataset="CUB", preset="tiny", overrides=["train.lr=0.001", "data.root=/tmp/x"])
    assert load_config_or_clean_error(config_path, cfg.to_yaml().encode()) == cfg
