"""Single verified files: the published attribute word vectors and the paper weights.

* ``zslbench data fetch w2v`` — ``<DS>_attribute.pkl`` of CUB, AWA2 and SUN (word2vec GoogleNews-300, each
  attribute phrase the sum of its word vectors: PROTOCOL.md §2), as published in the DAZLE repository (the
  TransZero repository holds the same files), into ``<data root>/<DS>/``, verified by size and sha256;
* ``zslbench data fetch weights`` — the ImageNet weights the reference implementations load
  (:data:`zslbench.backbones.weights.PUBLISHED`), into torch's hub cache, verified by the sha256 prefix their
  published file names carry (torch.hub's convention) or a ``--sha256`` given.

:func:`ensure_weights` is what a run does before anything is created: use the cached file, else download it
when the machine is online, else stop with one line that says how to get it.

>>> WORD_VECTORS["CUB"].filename
'CUB_attribute.pkl'
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from zslbench.backbones import weights as bw
from zslbench.core.errors import UserError, unknown_name
from zslbench.core.files import atomic_write, require_inside
from zslbench.data.fetch.command import local_path
from zslbench.data.fetch.download import download, verify_file

#: The DAZLE repository at the commit the word-vector files were published in.
DAZLE_W2V = "https://raw.githubusercontent.com/hbdat/cvpr20_DAZLE/e5a04601d8368903008fd96dee3d95dde398aa51/w2v/"


@dataclass(frozen=True)
class PublishedFile:
    filename: str
    size: int
    sha256: str


#: ``<DS>_attribute.pkl`` as published: numpy [A, 300] float64, word2vec GoogleNews-300.
WORD_VECTORS: dict[str, PublishedFile] = {
    "CUB": PublishedFile("CUB_attribute.pkl", 748_962, "35261deef657d26c0886d6f49842aefe237708fc7f5b4e4d76c790e47446fa88"),
    "AWA2": PublishedFile("AWA2_attribute.pkl", 204_161,
                          "675cd9fdc7a8dce6881c2681efe2ab4e27d2ee545ad0fad210e485f5414cb754"),
    "SUN": PublishedFile("SUN_attribute.pkl", 244_961, "cb90a74a9d3a43e2a7282861130760cb655e6d753b6cc4235a4c7136154b1fb3"),
}


# --------------------------------------------------------------------------- word vectors
def fetch_word_vectors(data_root: str | Path, datasets: Iterable[str] = (), base_url: str | None = None,
                       console: Any = None) -> list[Path]:
    """Download the published ``<DS>_attribute.pkl`` of ``datasets`` (default: all three) into
    ``<data_root>/<DS>/``; ``base_url`` replaces the published folder (a mirror or a local folder)."""
    chosen = list(datasets) or list(WORD_VECTORS)
    paths = []
    for dataset in chosen:
        if dataset not in WORD_VECTORS:
            raise unknown_name("dataset with published word vectors", dataset, WORD_VECTORS)
        published = WORD_VECTORS[dataset]
        root = Path(data_root).expanduser()
        destination = require_inside(root, root / dataset / published.filename, "the word-vector file")
        _make_folder(destination.parent)
        source = (base_url or DAZLE_W2V).rstrip("/") + "/" + published.filename
        paths.append(_fetch_file(source, destination, published.size, published.sha256, console))
        _say(console, f"[green]in place[/] {destination} (sha256 {published.sha256[:12]}…)")
    return paths


# --------------------------------------------------------------------------- weights
def weights_to_fetch(models: Iterable[str]) -> list[str]:
    """The distinct paper-weight tags of ``models`` (default: every catalogued model with paper weights)."""
    from zslbench.catalogue import MODELS, model_entry

    names = list(models) or MODELS.names()
    tags = []
    for name in names:
        tag = model_entry(name).config.paper_weights
        if not tag:
            raise UserError(f"model {name!r} names no paper weights; pass a weights file with "
                            "--set model.pretrained=PATH instead")
        if tag not in tags:
            tags.append(tag)
    return tags


def fetch_weights(models: Iterable[str] = (), url: str | None = None, sha256: str | None = None,
                  console: Any = None) -> list[Path]:
    """Download and verify the paper weights of ``models`` into torch's hub cache (``url``/``sha256``: one
    model's weights from a mirror or a local file)."""
    tags = weights_to_fetch(models)
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256.strip().lower()):
        raise UserError(f"--sha256 must be 64 hexadecimal digits, got {sha256!r}; copy the checksum exactly")
    sha256 = sha256.strip().lower() if sha256 is not None else None
    if url is not None and len(tags) != 1:
        raise UserError("--url names one weights file: pass --model too (e.g. --model svip)")
    paths = []
    for tag in tags:
        if tag not in bw.PUBLISHED:
            raise UserError(f"timm {tag} has no published file zslbench knows; pass a weights file with "
                            "--set model.pretrained=PATH")
        published = bw.PUBLISHED[tag]
        destination = bw.torch_checkpoints() / published.filename
        _make_folder(destination.parent)
        path = _fetch_file(url or published.url, destination, None, sha256, console)
        _check_prefix(path, published, explicit=sha256 is not None)
        paths.append(path)
        _say(console, f"[green]in place[/] {path} — {published.description}")
    return paths


def ensure_weights(spec: bw.WeightsSpec, console: Any = None) -> Path | None:
    """The file a run loads for ``spec``: found on this machine, else downloaded (published weights, when
    downloads are on), else a one-line :class:`UserError` saying how to get it. ``None``: random init or
    timm's own hub download."""
    try:
        return bw.local_file(spec)
    except UserError:
        if spec.kind != "timm" or spec.tag not in bw.PUBLISHED:
            raise
    if bw.offline():
        raise bw.missing_weights(spec, "downloads are off: $ZSLBENCH_OFFLINE or $HF_HUB_OFFLINE is set")
    published = bw.PUBLISHED[spec.tag]
    destination = bw.torch_checkpoints() / published.filename
    try:
        _make_folder(destination.parent)
        path = _fetch_file(published.url, destination, None, None, console, retries=1, timeout_s=15.0)
    except UserError as exc:
        raise bw.missing_weights(spec, f"the download failed: {exc}") from None
    _check_prefix(path, published, explicit=False)
    return path


def _check_prefix(path: Path, published: bw.PublishedWeights, explicit: bool) -> None:
    """A published file's sha256 must start with the prefix in its name (unless a --sha256 was checked)."""
    if explicit:
        return
    digest = _sha256(path)
    if not digest.startswith(published.sha256_prefix):
        path.unlink(missing_ok=True)
        raise UserError(f"{path.name} has sha256 {digest[:16]}…, but its published name says "
                        f"{published.sha256_prefix}…; it was deleted: fetch it again, or pass --sha256 of a copy "
                        "you trust")


# --------------------------------------------------------------------------- helpers
def _fetch_file(source: str, destination: Path, size: int | None, sha256: str | None, console: Any,
                retries: int = 3, timeout_s: float = 60.0) -> Path:
    local = local_path(source)
    if local is None:
        return download(source, destination, expected_size=size, sha256=sha256, retries=retries,
                        timeout_s=timeout_s, console=console)
    if not local.is_file():
        raise UserError(f"{local} does not exist; pass --url with the path (or file:// URL) of the file")
    problem = verify_file(local, size, sha256, None, console)
    if problem:
        raise UserError(f"{local} is not the expected {destination.name}: {problem}")
    if local.resolve() != destination.resolve():
        with open(local, "rb") as source_file:
            atomic_write(destination, lambda handle: shutil.copyfileobj(source_file, handle))
    return destination


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {folder} ({exc.strerror or exc}); make it writable or set its location "
                        "($TORCH_HOME for weights, --data-root for word vectors)") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _say(console: Any, text: str) -> None:
    if console is not None:
        console.print(text, highlight=False)
