"""Attribute-name cleaning (zslbench.data.phrases) against the real cleaned phrases.

``attribute_new_des.csv`` holds, per attribute, the cleaned phrase that built the shipped
word vectors (``attribute_w2v.npy``). CUB and SUN match it exactly. The AWA2 csv was written
before its compound-splitting step (the published AWA2 script splits compounds such as
``toughskin`` before summing word vectors), so for those nine rows the expected words are the
split ones; ``test_awa2_compounds_are_sums_in_the_shipped_vectors`` proves it on the vectors.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from zslbench.data.phrases import AWA_REPLACEMENTS, clean_phrases

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _shared(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"../shared/data is absent ({path.name} not found): real-name tests skipped")
    return path


def _new_des(dataset: str) -> list[str]:
    with _shared(dataset, "attribute_new_des.csv").open(newline="") as handle:
        return [row["new_des"] for row in csv.DictReader(handle)]


def _raw_names(dataset: str) -> list[str]:
    if dataset == "CUB":  # "<idx> has_part::value"
        lines = _shared("CUB", "attributes.txt").read_text().splitlines()
        return [line.split(" ", 1)[1] for line in lines if line.strip()]
    if dataset == "AWA2":  # "<idx>\t<predicate>"
        lines = _shared("AWA2", "predicates.txt").read_text().splitlines()
        return [line.split("\t", 1)[1].strip() for line in lines if line.strip()]
    import scipy.io

    cells = scipy.io.loadmat(_shared("SUN", "attributes.mat"))["attributes"].ravel()
    return [str(cell.item()) for cell in cells]


@pytest.mark.parametrize(("dataset", "count"), [("CUB", 312), ("SUN", 102)])
def test_every_real_attribute_matches_the_published_cleaned_phrase(dataset: str, count: int) -> None:
    names, expected = _raw_names(dataset), _new_des(dataset)
    assert len(names) == len(expected) == count
    cleaned = clean_phrases(dataset, names)
    mismatches = [(n, c, e) for n, c, e in zip(names, cleaned, expected) if c != e.split()]
    assert mismatches == []


def test_every_awa2_predicate_matches_the_published_phrase_with_compounds_split() -> None:
    names, published = _raw_names("AWA2"), _new_des("AWA2")
    assert len(names) == len(published) == 85
    compounds = dict(AWA_REPLACEMENTS)
    expected = [compounds.get(phrase, phrase).split() for phrase in published]
    assert clean_phrases("AWA2", names) == expected
    assert sum(len(words) == 2 for words in expected) == 8  # quadrapedal→quadrupedal stays one word


def _has_at_most_8_significant_bits(row: np.ndarray) -> bool:
    mantissa, _ = np.frexp(row.astype(np.float64))
    return bool(np.all(mantissa * 256 == np.round(mantissa * 256)))


def test_awa2_compounds_are_sums_in_the_shipped_vectors() -> None:
    """GoogleNews vectors carry at most 8 significant bits per component, so a one-word phrase
    gives an 8-bit row and a sum of two words (almost surely) does not: the word counts of our
    cleaning must agree with the shipped AWA2 vectors row by row."""
    vectors = np.load(_shared("AWA2", "attribute_w2v.npy"))
    cleaned = clean_phrases("AWA2", _raw_names("AWA2"))
    one_word = [_has_at_most_8_significant_bits(row) for row in vectors]
    assert one_word == [len(words) == 1 for words in cleaned]
    # and the split is linear: (meat teeth) - (meat) = teeth, (chew teeth) - teeth = chew, a word
    index = {" ".join(words): i for i, words in enumerate(cleaned)}
    teeth = vectors[index["meat teeth"]].astype(np.float64) - vectors[index["meat"]]
    assert _has_at_most_8_significant_bits(teeth)
    assert _has_at_most_8_significant_bits(vectors[index["chew teeth"]] - teeth)


@pytest.mark.parametrize(
    ("dataset", "name", "words"),
    [
        ("CUB", "has_bill_shape::curved_(up_or_down)", ["bill", "shape", "curved"]),
        ("CUB", "has_bill_shape::spatulate", ["bill", "shape", "broad"]),
        ("CUB", "has_upperparts_color::grey", ["upper", "parts", "color", "gray"]),
        ("CUB", "has_shape::upright-perching_water-like", ["shape", "upright", "perching", "water", "like"]),
        ("CUB", "has_size::small_(5_-_9_in)", ["size", "small"]),
        ("AWA2", "quadrapedal", ["quadrupedal"]),
        ("AWA1", "newworld", ["new", "world"]),
        ("AWA2", "longneck", ["longneck"]),
        ("SUN", "rock/stone", ["rock", "stone"]),
        ("SUN", "electric/indoor lighting", ["electric", "indoor", "lighting"]),
        ("SUN", "far-away horizon", ["faraway", "horizon"]),
        ("SUN", "man-made", ["man-made"]),
        ("SUN", "wood (not part of a tree)", ["wood", "(not", "part", "of", "a", "tree)"]),
        ("synth", "head colour red", ["head", "colour", "red"]),
        ("synth", "Tail_Pattern::Striped-2", ["tail", "pattern", "striped"]),
        ("other", "", []),
    ],
)
def test_rules_per_dataset(dataset: str, name: str, words: list[str]) -> None:
    assert clean_phrases(dataset, [name]) == [words]


def test_dataset_names_are_case_insensitive_and_order_is_kept() -> None:
    names = ["has_wing_color::grey", "has_leg_color::buff"]
    assert clean_phrases("cub", names) == clean_phrases("CUB", names)
    assert clean_phrases("CUB", names[::-1]) == clean_phrases("CUB", names)[::-1]
