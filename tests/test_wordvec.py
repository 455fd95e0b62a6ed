"""Attribute word vectors: .npy, the restricted legacy-pickle reader, GloVe phrases, random, shape checks."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from test_xlsa17 import TINY_ATTRIBUTES, write_tiny_dataset
from zslbench.data.wordvec import glove_phrase_vectors, glove_table, load_numpy_pickle, load_word_vectors
from zslbench.data.xlsa17 import load_split
from zslbench.core.errors import DataError


@pytest.fixture()
def tiny_split(tmp_path: Path):
    write_tiny_dataset(tmp_path / "synth", images=False)
    return load_split("synth", tmp_path)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- files
def test_npy_path(tiny_split, tmp_path: Path) -> None:
    vectors = np.arange(5 * 7, dtype=np.float64).reshape(5, 7)
    np.save(tmp_path / "vectors.npy", vectors)
    out = load_word_vectors(str(tmp_path / "vectors.npy"), tiny_split)
    assert out.dtype == np.float32 and out.shape == (5, 7)
    np.testing.assert_array_equal(out, vectors.astype(np.float32))


def test_auto_prefers_the_precomputed_file(tiny_split) -> None:
    np.save(tiny_split.directory / "attribute_w2v.npy", np.ones((5, 3)))
    assert load_word_vectors("auto", tiny_split).shape == (5, 3)
    assert load_word_vectors("w2v", tiny_split).shape == (5, 3)


@pytest.mark.parametrize("dataset", ["CUB", "AWA2", "SUN"])
def test_real_legacy_pickle_equals_npy(shared_data: Path, dataset: str) -> None:
    split = load_split(dataset, shared_data)
    from_pickle = load_word_vectors(str(shared_data / dataset / f"{dataset}_attribute.pkl"), split)
    from_npy = load_word_vectors("w2v", split)  # attribute_w2v.npy comes first
    assert from_pickle.shape == (split.num_attributes, 300)
    np.testing.assert_allclose(from_pickle, from_npy, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickles_of_every_protocol_load(tmp_path: Path, protocol: int) -> None:
    array = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    path = tmp_path / "vectors.pkl"
    path.write_bytes(pickle.dumps(array, protocol=protocol))
    np.testing.assert_array_equal(load_numpy_pickle(path), array)


class _Exploit:
    """Unpickling this runs a shell command (the attack a plain pickle.load allows)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tiny_split, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|os|nt)\.system .*only numpy arrays are accepted"):
        load_word_vectors(str(path), tiny_split)
    assert not marker.exists()


def test_pickle_of_other_objects_is_refused(tiny_split, tmp_path: Path) -> None:
    path = tmp_path / "dict.pkl"
    path.write_bytes(pickle.dumps({"vectors": [1.0, 2.0]}))
    with pytest.raises(DataError, match="holds dict, not a numeric numpy array"):
        load_word_vectors(str(path), tiny_split)
    hidden = tmp_path / "hidden.pkl"
    hidden.write_bytes(pickle.dumps(np.array([Path("x")], dtype=object)))
    with pytest.raises(DataError, match="refusing to unpickle pathlib"):
        load_numpy_pickle(hidden)


def test_wrong_row_count(tiny_split, tmp_path: Path) -> None:
    np.save(tmp_path / "short.npy", np.zeros((4, 300)))
    with pytest.raises(DataError, match=r"shape \(4, 300\) but synth has 5 attributes"):
        load_word_vectors(str(tmp_path / "short.npy"), tiny_split)


def test_bad_specs(tiny_split, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown word-vector source 'fasttext'; valid choices: auto, w2v, glove"):
        load_word_vectors("fasttext", tiny_split)
    with pytest.raises(DataError, match="word-vector file .*absent.npy does not exist"):
        load_word_vectors(str(tmp_path / "absent.npy"), tiny_split)
    with pytest.raises(DataError, match="no word2vec attribute vectors for synth"):
        load_word_vectors("w2v", tiny_split)
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="is not a readable numeric .npy file"):
        load_word_vectors(str(tmp_path / "broken.npy"), tiny_split)


# --------------------------------------------------------------------------- random and GloVe
def test_random_is_seeded(tiny_split) -> None:
    first = load_word_vectors("random", tiny_split, seed=3)
    assert first.shape == (5, 300) and first.dtype == np.float32
    np.testing.assert_array_equal(first, load_word_vectors("random", tiny_split, seed=3))
    assert not np.array_equal(first, load_word_vectors("random", tiny_split, seed=4))


def test_glove_embeds_plain_english_phrases(tiny_split) -> None:
    vectors = load_word_vectors("glove", tiny_split)
    assert vectors.shape == (5, 50) and vectors.dtype == np.float32
    assert (np.linalg.norm(vectors, axis=1) > 0).all()
    vocabulary, table = glove_table()
    expected = sum(np.asarray(table[vocabulary[w]]) for w in ("head", "colour", "red"))
    np.testing.assert_allclose(vectors[0], expected, rtol=1e-5)
    red, crimson, tail = glove_phrase_vectors(["red", "crimson", "tail"])
    assert _cosine(red, crimson) > _cosine(red, tail)
    assert glove_table() is glove_table()  # the 400k-word vocabulary is built once


def test_auto_falls_back_to_glove_for_english_names(tiny_split) -> None:
    np.testing.assert_array_equal(load_word_vectors("auto", tiny_split), glove_phrase_vectors(TINY_ATTRIBUTES))


def test_out_of_vocabulary_phrases_get_zero_vectors_with_one_warning() -> None:
    with pytest.warns(UserWarning, match="2 of 3 attribute phrases have no GloVe word"):
        vectors = glove_phrase_vectors(["qzxwv vbnmq", "red", "::"])
    assert not vectors[0].any() and vectors[1].any() and not vectors[2].any()


def test_auto_without_names_or_files_is_an_error(tiny_split) -> None:
    (tiny_split.directory / "attributes.txt").unlink()
    split = load_split("synth", tiny_split.directory.parent)
    with pytest.raises(DataError, match="no word2vec attribute vectors for synth: expected attribute_w2v.npy"):
        load_word_vectors("auto", split)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_word_vectors("random", split).shape == (5, 300)


def _cub_without_vectors(shared_data, tmp_path):
    import shutil

    directory = tmp_path / "CUB"
    directory.mkdir()
    for name in ("att_splits.mat", "res101_meta.npz", "attributes.txt", "attribute_groups.json"):
        shutil.copy(shared_data / "CUB" / name, directory / name)
    return load_split("CUB", tmp_path)


@pytest.mark.shared
def test_auto_on_a_real_dataset_needs_its_word2vec_file_and_never_falls_back_to_glove(shared_data, tmp_path) -> None:
    split = _cub_without_vectors(shared_data, tmp_path)
    for spec in ("auto", "w2v"):
        with pytest.raises(DataError) as caught:
            load_word_vectors(spec, split)
        message = str(caught.value)
        assert "no word2vec attribute vectors for CUB: expected attribute_w2v.npy or CUB_attribute.pkl" in message
        assert "zslbench data fetch w2v --dataset CUB" in message and "zslbench data embed" in message
    assert load_word_vectors("glove", split).shape == (312, 50)  # only when asked


@pytest.mark.shared
def test_auto_on_a_real_dataset_reads_the_published_word2vec_vectors(shared_data) -> None:
    from zslbench.data.wordvec import describe_source

    split = load_split("CUB", shared_data)
    vectors = load_word_vectors("auto", split)
    assert vectors.shape == (312, 300)
    np.testing.assert_allclose(vectors, np.load(shared_data / "CUB" / "attribute_w2v.npy"), rtol=1e-6)
    assert describe_source("auto", split) == "word2vec file attribute_w2v.npy"
