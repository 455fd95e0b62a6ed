"""Attribute word vectors from a user's word-vector file (PROTOCOL.md §2).

Each attribute name is cleaned into words (:mod:`zslbench.data.phrases`) and its vector is the
**sum** of the vectors of its words; out-of-vocabulary words are skipped and a phrase with no
known word is a zero row (counted and reported). With Google's GoogleNews-300 word2vec file and
the real attribute names this reproduces the ``attribute_w2v.npy`` arrays that published code ships.

Word-vector files are read *streaming* and only the words the phrases need are kept: the
GoogleNews file is 3.6 GB and is never loaded whole (reading stops once every needed word is
found; the file is ordered by frequency, so that is usually early). Supported formats, detected
from the content (``.gz`` compressed files too):

- word2vec binary (``.bin``): a header line ``"<count> <dim>\\n"``, then per word the word's
  UTF-8 bytes, a space, ``dim`` little-endian float32 values and an optional newline;
- word2vec text: the same header, then lines ``word v1 ... vD``;
- GloVe text: lines ``word v1 ... vD`` without a header.

Example (a made-up two-dimensional GloVe file):

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.txt"
>>> _ = path.write_text("wing 1 0\\ncolor 0 2\\nblue 3 3\\n")
>>> result = embed_phrases([["wing", "color", "blue"], ["mauve"]], path)
>>> result.vectors.tolist(), result.oov_words, result.empty_rows
([[4.0, 5.0], [0.0, 0.0]], ['mauve'], [1])
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

import numpy as np

from zslbench.core.errors import DataError, UserError
from zslbench.core.files import atomic_write

#: Bytes read per step while streaming a binary file.
CHUNK_BYTES = 8 << 20
#: The default output file name inside a dataset directory.
W2V_FILE = "attribute_w2v.npy"


@dataclass
class WordVectors:
    """The vectors of the requested words that a file holds (others are not kept)."""

    vectors: dict[str, np.ndarray]  # word → float32 [dim]
    dim: int
    file_format: str  # "word2vec-binary" | "word2vec-text" | "glove-text"


@dataclass
class EmbedResult:
    """Attribute vectors and what was missing while building them."""

    vectors: np.ndarray  # [A, D] float32
    phrases: list[list[str]]
    oov_words: list[str]  # sorted, unique
    empty_rows: list[int]  # attributes whose words were all out of vocabulary (zero rows)
    file_format: str = ""
    out: Path | None = None
    status: str = ""  # "written" | "unchanged" | "" (not saved)
    words_found: int = 0


# --------------------------------------------------------------------------- reading files
def read_word_vectors(path: str | Path, wanted: Iterable[str], console=None) -> WordVectors:
    """Stream ``path`` and keep the vectors of the words in ``wanted`` (case-sensitive, first occurrence).

    Raises :class:`DataError` for a missing, truncated or malformed file (one line, with the fix).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"word-vector file {str(path)!r} does not exist; pass --vectors with a word2vec "
                        ".bin or a GloVe/word2vec text file (e.g. GoogleNews-vectors-negative300.bin)")
    wanted_bytes = {w.encode("utf-8") for w in wanted}
    with _open_stream(path) as (stream, raw):
        with _progress(console, path) as advance:
            file_format, dim, count, first_line = _detect_format(stream, path)
            if file_format == "word2vec-binary":
                found = _read_binary(stream, path, count, dim, wanted_bytes, lambda: advance(raw.tell()))
            else:
                found = _read_text(stream, path, dim, first_line, file_format == "word2vec-text",
                                   wanted_bytes, lambda: advance(raw.tell()))
    vectors = {word.decode("utf-8", errors="replace"): vector for word, vector in found.items()}
    return WordVectors(vectors=vectors, dim=dim, file_format=file_format)


class _open_stream:
    """Context manager giving (decompressed buffered stream, raw file) for plain or ``.gz`` files."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> tuple[IO[bytes], IO[bytes]]:
        self.raw = open(self.path, "rb")
        magic = self.raw.read(2)
        self.raw.seek(0)
        if magic == b"\x1f\x8b":  # gzip, whatever the suffix
            unpacked = gzip.GzipFile(fileobj=self.raw)
            self.stream: IO[bytes] = io.BufferedReader(unpacked, CHUNK_BYTES)  # type: ignore[arg-type]
        else:
            self.stream = io.BufferedReader(self.raw, CHUNK_BYTES)  # type: ignore[arg-type]
        return self.stream, self.raw

    def __exit__(self, *exc_info) -> None:
        self.raw.close()


class _progress:
    """A rich progress bar over the (compressed) bytes of the file; silent without a console."""

    def __init__(self, console, path: Path) -> None:
        self.console, self.path = console, path

    def __enter__(self):
        if self.console is None:
            return lambda position: None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

        self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(), console=self.console, transient=True)
        self.bar.start()
        task = self.bar.add_task(f"reading {self.path.name}", total=self.path.stat().st_size)
        return lambda position: self.bar.update(task, completed=position)

    def __exit__(self, *exc_info) -> None:
        if self.console is not None:
            self.bar.stop()


def _detect_format(stream: IO[bytes], path: Path) -> tuple[str, int, int, bytes | None]:
    """(format, dim, word count or -1, the first data line for GloVe text)."""
    first = stream.readline(1 << 20)
    if not first:
        raise DataError(f"word-vector file {path} is empty; pass a word2vec .bin or a GloVe/word2vec text file")
    fields = first.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        count, dim = int(fields[0]), int(fields[1])
        if count <= 0 or dim <= 0:
            raise DataError(f"{path}: header {first.strip().decode(errors='replace')!r} announces no vectors; "
                            "the file is not a word2vec file")
        peek = stream.peek(dim * 32 + 4096)
        line = peek.split(b"\n", 1)[0]
        return ("word2vec-text" if _is_text_vector_line(line, dim) else "word2vec-binary"), dim, count, None
    dim = len(fields) - 1
    if dim < 1 or not _is_text_vector_line(first, dim):
        raise DataError(f"{path} is neither word2vec (no 'count dim' header) nor GloVe text (its first line is "
                        "not 'word v1 ... vD'); pass a word2vec .bin or a GloVe/word2vec text file")
    return "glove-text", dim, -1, first


def _is_text_vector_line(line: bytes, dim: int) -> bool:
    fields = line.split()
    if len(fields) != dim + 1:
        return False
    try:
        [float(v) for v in fields[1:]]
    except ValueError:
        return False
    return True


def _read_binary(stream: IO[bytes], path: Path, count: int, dim: int, wanted: set[bytes],
                 report_progress) -> dict[bytes, np.ndarray]:
    """Parse ``count`` binary records, keeping wanted words; stops once all are found."""
    record = dim * 4
    found: dict[bytes, np.ndarray] = {}
    buffer, position = b"", 0
    for index in range(count):
        if len(found) == len(wanted):
            break
        while True:  # make sure the buffer holds "word<space><record bytes>"
            space = buffer.find(b" ", position)
            if space != -1 and len(buffer) - space - 1 >= record:
                break
            more = stream.read(CHUNK_BYTES)
            if not more:
                raise DataError(f"{path} ends inside record {index + 1} of the {count} its header announces; "
                                "the file is truncated, download it again")
            buffer, position = buffer[position:] + more, 0
            report_progress()
        word = buffer[position:space].lstrip(b"\n\r")  # the optional newline after the previous vector
        if word in wanted and word not in found:
            found[word] = np.frombuffer(buffer, dtype="<f4", count=dim, offset=space + 1).astype(np.float32)
        position = space + 1 + record
    report_progress()
    return found


def _read_text(stream: IO[bytes], path: Path, dim: int, first_line: bytes | None, has_header: bool,
               wanted: set[bytes], report_progress) -> dict[bytes, np.ndarray]:
    """Parse ``word v1 .. vD`` lines; a kept line with another number of values is an error."""
    found: dict[bytes, np.ndarray] = {}
    lines: Iterable[bytes] = stream if first_line is None else _chain([first_line], stream)
    line_number = 1 if has_header else 0
    for line in lines:
        line_number += 1
        if len(found) == len(wanted):
            break
        word, _, rest = line.rstrip(b"\r\n").partition(b" ")
        if word not in wanted or word in found:
            continue
        values = rest.split()
        if len(values) != dim:
            raise DataError(f"{path}, line {line_number} ({word.decode(errors='replace')!r}): {len(values)} values "
                            f"but the file's vectors have {dim}; the file mixes dimensions or is damaged, "
                            "fix or re-download it")
        try:
            found[word] = np.array([float(v) for v in values], dtype=np.float32)
        except ValueError:
            raise DataError(f"{path}, line {line_number}: a value of {word.decode(errors='replace')!r} is not a "
                            "number; the file is damaged, fix or re-download it") from None
        if line_number % 4096 == 0:
            report_progress()
    report_progress()
    return found


def _chain(head: Sequence[bytes], tail: Iterable[bytes]) -> Iterator[bytes]:
    yield from head
    yield from tail


# --------------------------------------------------------------------------- summing
def sum_phrase_vectors(phrases: Sequence[Sequence[str]], table: WordVectors) -> EmbedResult:
    """[A, D] float32: each row the sum (in float64) of its words' vectors; OOV words skipped."""
    out = np.zeros((len(phrases), table.dim), dtype=np.float64)
    oov: set[str] = set()
    empty: list[int] = []
    for row, words in enumerate(phrases):
        known = [w for w in words if w in table.vectors]
        oov.update(w for w in words if w not in table.vectors)
        if not known:
            empty.append(row)
        for word in known:
            out[row] += table.vectors[word]
    return EmbedResult(vectors=out.astype(np.float32), phrases=[list(p) for p in phrases], oov_words=sorted(oov),
                       empty_rows=empty, file_format=table.file_format, words_found=len(table.vectors))


def embed_phrases(phrases: Sequence[Sequence[str]], vector_file: str | Path, console=None) -> EmbedResult:
    """Read only the needed words from ``vector_file`` and sum them per phrase."""
    wanted = {w for words in phrases for w in words}
    return sum_phrase_vectors(phrases, read_word_vectors(vector_file, wanted, console))


# --------------------------------------------------------------------------- writing
def save_npy_atomic(path: str | Path, array: np.ndarray, force: bool = False) -> str:
    """Write ``array`` to ``path`` (.npy) atomically (:func:`zslbench.core.files.atomic_write`).

    Returns ``"written"``, or ``"unchanged"`` when ``path`` already holds the same array. A
    different existing file is replaced only with ``force`` (else :class:`UserError`); a failed write
    (read-only folder, full disk) is a :class:`DataError` and leaves ``path`` as it was.
    """
    path = Path(path).expanduser()
    if path.exists():
        if _same_array(path, array):
            return "unchanged"
        if not force:
            raise UserError(f"{path} exists and differs from the new vectors; pass --force to replace it "
                            "or --out to write elsewhere")
    try:
        atomic_write(path, lambda handle: np.save(handle, array),
                     hint="make its folder writable or free disk space, or pass --out to write elsewhere")
    except UserError as exc:  # a read-only folder or a full disk: a data problem of this command
        raise DataError(str(exc)) from exc.__cause__
    return "written"


def _same_array(path: Path, array: np.ndarray) -> bool:
    try:
        existing = np.load(path, allow_pickle=False)
    except Exception:  # unreadable: certainly not the same content
        return False
    return existing.dtype == array.dtype and existing.shape == array.shape and bool(np.array_equal(existing, array))


# --------------------------------------------------------------------------- the dataset command
def build_attribute_vectors(dataset: str, data_root: str | Path, vector_file: str | Path,
                            out: str | Path | None = None, force: bool = False, console=None) -> EmbedResult:
    """``zslbench data embed``: the [A, D] vectors of ``dataset``'s attributes, saved as .npy.

    Attribute names come from the dataset directory (``attributes.txt``, ``predicates.txt`` or
    ``attributes.mat``); the default output is ``<dataset dir>/attribute_w2v.npy``.
    """
    from zslbench.data.phrases import clean_phrases
    from zslbench.data.xlsa17 import load_split

    split = load_split(dataset, data_root)
    if "attribute_names" not in split.source_files:
        raise DataError(f"{split.directory} has no attribute names (attributes.txt, predicates.txt or "
                        f"attributes.mat), so there is nothing to embed; {_names_hint(dataset)}")
    phrases = clean_phrases(dataset, split.attribute_names)
    result = embed_phrases(phrases, vector_file, console)
    target = Path(out).expanduser() if out is not None else split.directory / W2V_FILE
    result.status = save_npy_atomic(target, result.vectors, force=force)
    result.out = target
    if console is not None:
        print_embed_summary(result, split.attribute_names, console)
    return result


def _names_hint(dataset: str) -> str:
    hints = {
        "CUB": "copy attributes.txt from CUB_200_2011.tgz (`zslbench data fetch CUB` places it)",
        "AWA2": "copy predicates.txt from AwA2-data.zip (`zslbench data fetch AWA2` places it)",
        "SUN": "copy attributes.mat from https://cs.brown.edu/~gmpatter/Attributes/SUNAttributeDB.tar.gz",
    }
    return hints.get(dataset, "add attributes.txt with one 'index name' line per attribute")


def print_embed_summary(result: EmbedResult, names: Sequence[str], console) -> None:
    """One-screen report: shape, where it went, OOV words and zero rows."""
    rows, dim = result.vectors.shape
    verb = {"written": "wrote", "unchanged": "unchanged (same content):"}.get(result.status, "built")
    console.print(f"{verb} {result.out} [{rows}, {dim}] float32 from a {result.file_format} file "
                  f"({result.words_found} distinct words found)")
    if result.oov_words:
        shown = ", ".join(result.oov_words[:12]) + (" ..." if len(result.oov_words) > 12 else "")
        console.print(f"[yellow]{len(result.oov_words)} out-of-vocabulary word(s) skipped:[/] {shown}")
    if result.empty_rows:
        shown = ", ".join(repr(names[i]) for i in result.empty_rows[:8])
        console.print(f"[yellow]warning: {len(result.empty_rows)} attribute(s) have no known word and get a "
                      f"zero vector:[/] {shown}")
