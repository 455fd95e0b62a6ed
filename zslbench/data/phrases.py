"""Attribute names → cleaned word lists, the first step of attribute word vectors.

The word vectors that published ZSL code ships (``<DS>_attribute.pkl``; PROTOCOL.md §2) were built
by summing the word2vec vectors of a *cleaned* version of each attribute name. To reproduce those
arrays from a word-vector file, the cleaning must be the same, token for token, including its
quirks: CUB cuts at ``(`` and keeps everything before it, while SUN keeps the parenthesis in
``wood (not part of a tree)`` so its tokens ``(not`` and ``tree)`` are simply out of vocabulary.

Rules per dataset (applied in this order):

- CUB: ``_``, ``-`` and ``::`` become spaces; everything from the first ``(`` is cut; the leading
  ``has`` is dropped; then the substring fixes ``spatulate→broad``, ``upperparts→upper parts``,
  ``grey→gray``.
- AWA2 (and AWA1, same predicates): compounds are split (``newworld→new world``,
  ``oldworld→old world``, ``nestspot→nest spot``, ``toughskin→tough skin``, ``longleg→long leg``,
  ``chewteeth→chew teeth``, ``meatteeth→meat teeth``, ``strainteeth→strain teeth``) and
  ``quadrapedal→quadrupedal``.
- SUN: ``/`` is removed; then ``rockstone→rock stone``, ``dirtsoil→dirt soil``,
  ``sunsunny→sun sunny``, ``electricindoor→electric indoor``, ``semi-enclosed→semi enclosed``,
  ``far-away→faraway``. Other hyphens (``man-made``) stay.
- Any other dataset (the synthetic one included): lower-case, split on every non-letter.

Finally the phrase is split on whitespace.

>>> clean_phrases("CUB", ["has_bill_shape::curved_(up_or_down)", "has_upperparts_color::grey"])
[['bill', 'shape', 'curved'], ['upper', 'parts', 'color', 'gray']]
>>> clean_phrases("SUN", ["direct sun/sunny"])
[['direct', 'sun', 'sunny']]
>>> clean_phrases("synth", ["head colour: red"])
[['head', 'colour', 'red']]
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

#: Substring replacements applied after splitting, in order (why: these words are out of the
#: word2vec vocabulary or misspelt in the original attribute lists).
CUB_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("spatulate", "broad"),
    ("upperparts", "upper parts"),
    ("grey", "gray"),
)
AWA_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("newworld", "new world"),
    ("oldworld", "old world"),
    ("nestspot", "nest spot"),
    ("toughskin", "tough skin"),
    ("longleg", "long leg"),
    ("chewteeth", "chew teeth"),
    ("meatteeth", "meat teeth"),
    ("strainteeth", "strain teeth"),
    ("quadrapedal", "quadrupedal"),
)
SUN_REPLACEMENTS: tuple[tuple[str, str], ...] = (
    ("rockstone", "rock stone"),
    ("dirtsoil", "dirt soil"),
    ("sunsunny", "sun sunny"),
    ("electricindoor", "electric indoor"),
    ("semi-enclosed", "semi enclosed"),
    ("far-away", "faraway"),
)


def _replace_all(phrase: str, replacements: Sequence[tuple[str, str]]) -> str:
    for old, new in replacements:
        phrase = phrase.replace(old, new)
    return phrase


def clean_cub(name: str) -> list[str]:
    """Clean one CUB attribute name (``has_<part>::<value>``).

    >>> clean_cub("has_size::very_large_(32_-_72_in)")
    ['size', 'very', 'large']
    """
    phrase = name.replace("::", " ").replace("_", " ").replace("-", " ")
    phrase = phrase.split("(", 1)[0]
    words = phrase.split()
    if words and words[0] == "has":
        words = words[1:]
    return _replace_all(" ".join(words), CUB_REPLACEMENTS).split()


def clean_awa(name: str) -> list[str]:
    """Clean one AwA predicate (also used for AWA1, which shares the 85 predicates).

    >>> clean_awa("chewteeth")
    ['chew', 'teeth']
    """
    return _replace_all(name.strip(), AWA_REPLACEMENTS).split()


def clean_sun(name: str) -> list[str]:
    """Clean one SUN attribute name.

    >>> clean_sun("semi-enclosed area")
    ['semi', 'enclosed', 'area']
    """
    return _replace_all(name.replace("/", ""), SUN_REPLACEMENTS).split()


def clean_generic(name: str) -> list[str]:
    """Lower-case and split on anything that is not a letter (synthetic and unknown datasets).

    >>> clean_generic("Wing-Colour::Dark_Blue")
    ['wing', 'colour', 'dark', 'blue']
    """
    return re.findall(r"[^\W\d_]+", name.lower())


_RULES: dict[str, Callable[[str], list[str]]] = {
    "CUB": clean_cub,
    "AWA2": clean_awa,
    "AWA1": clean_awa,
    "SUN": clean_sun,
}


def cleaner_for(dataset: str) -> Callable[[str], list[str]]:
    """The cleaning function of a dataset (case-insensitive name; generic for unknown ones)."""
    return _RULES.get(dataset.upper(), clean_generic)


def clean_phrases(dataset: str, names: Sequence[str]) -> list[list[str]]:
    """The words of each cleaned attribute phrase, in the order of ``names``.

    ``dataset`` picks the rules (CUB, AWA2/AWA1, SUN; anything else: generic).
    """
    clean = cleaner_for(dataset)
    return [clean(str(name)) for name in names]
