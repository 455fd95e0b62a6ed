"""`zslbench data fetch` against archives and servers built to break it, as an attacker (or bad luck) would.

Every archive is made here, member by member, because the order of members is the attack: a link that is
harmless when it is unpacked can become a way out once a later member turns a path it goes through into
another link. The server is test_fetch's loopback HTTP server with its misbehaviours switched on (no
Content-Length, a connection closed at a member boundary). A full disk is ``RLIMIT_FSIZE``.

What must hold in every case: one line, exit code 2 through the CLI (a ``UserError`` in-process), no link
and no file outside the data root, no half-installed dataset, and no folder left that the fetch created.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import io
import json
import lzma
import os
import stat
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from test_bad_inputs import file_size_limit, invoke
from test_fetch import FAST, NOISE, ArchiveServer, cub_tgz, serve, xlsa17_zip  # noqa: F401 (serve: a fixture)
from zslbench.core.errors import UserError
from zslbench.data.fetch import SOURCES, fetch
from zslbench.data.fetch.archive import UnpackLimits, resolve_in_archive

pytestmark = pytest.mark.timeout(120)


# --------------------------------------------------------------------------- archives, member by member
def tar_bytes(members: list[tuple[str, str, bytes | str]], compression: str = "gz") -> bytes:
    """A tar (``compression``: gz, xz, bz2 or "" for none) of ``(name, kind, data)``: kind file | sym | hard
    (data: the link's target) | dir."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as bundle:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                bundle.addfile(info, io.BytesIO(data))  # type: ignore[arg-type]
                continue
            info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE}[kind]
            info.linkname = data if isinstance(data, str) else ""
            bundle.addfile(info)
    return buffer.getvalue()


def zip_bytes(members: list[tuple[str, str, bytes | str]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``(name, kind, data)``: kind file | sym (a Unix symlink whose data is its target) | dir."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as bundle:
        for name, kind, data in members:
            info = zipfile.ZipInfo(name + ("/" if kind == "dir" else ""))
            info.compress_type = method
            if kind == "sym":
                info.create_system = 3
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            bundle.writestr(info, data.encode() if isinstance(data, str) else data)
    return buffer.getvalue()


def patch_zip_member(data: bytes, member: str, local: int | None, central: int | None, value: int,
                     size: int = 2) -> bytes:
    """Overwrite a little-endian field of ``member``'s local and/or central directory header."""
    out = bytearray(data)
    for signature, offset, name_at, header in ((b"PK\x03\x04", local, 26, 30), (b"PK\x01\x02", central, 28, 46)):
        position = 0
        while offset is not None and (position := out.find(signature, position)) >= 0:
            length = struct.unpack_from("<H", out, position + name_at)[0]
            if out[position + header:position + header + length] == member.encode():
                struct.pack_into("<H" if size == 2 else "<I", out, position + offset, value)
            position += 4
    return bytes(out)


CUB_BASE = [("CUB_200_2011/README", "file", b"CUB-200-2011\n"), ("attributes.txt", "file", b"1 has_bill\n")]
AWA2_BASE = [("Animals_with_Attributes2/predicates.txt", "file", b"1 black\n")]
SECRET = "zslbench-attack-secret.txt"


def escaping_chain(folder: str) -> list[tuple[str, str, bytes | str]]:
    """Links each of whose own text stays inside ``folder``, but which, followed one through the other,
    climb out of the data root to a file beside it: ``l1 → ..``, ``lN → l(N-1)/..``, ``leak → l6/../SECRET``."""
    links: list[tuple[str, str, bytes | str]] = [(f"{folder}/l1", "sym", "..")]
    links += [(f"{folder}/l{n}", "sym", f"l{n - 1}/..") for n in range(2, 7)]
    return links + [(f"{folder}/leak", "sym", f"l6/{SECRET}")]


ARCHIVES = {  # source, archive name, base members, build, the folder a layout rule moves
    "tgz-CUB": ("CUB", "CUB_200_2011.tgz", CUB_BASE, tar_bytes, "CUB_200_2011/x/y/z"),
    "zip-AWA2": ("AWA2", "AwA2-data.zip", AWA2_BASE, zip_bytes, "Animals_with_Attributes2/x/y/z"),
}


def fetch_file(tmp_path: Path, root: Path, source: str, filename: str, data: bytes, **options) -> object:
    path = tmp_path / filename
    path.write_bytes(data)
    return fetch(source, root, url=str(path), sha256=hashlib.sha256(data).hexdigest(), check=False, **options)


def links_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_symlink()] if folder.exists() else []


def files_outside(tmp_path: Path, root: Path) -> list[str]:
    """Files under ``tmp_path`` that are neither the test's archives nor the planted secret nor under ``root``."""
    return sorted(str(p) for p in tmp_path.rglob("*") if p.is_file() and root not in p.parents
                  and p.name != SECRET and p.suffix not in (".tgz", ".zip", ".tar", ".xz", ".bz2", ".gz"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / SECRET).write_text("outside the data root")
    return tmp_path / "data"


# --------------------------------------------------------------------------- links
@pytest.mark.parametrize("order", ["links-first", "links-last"])
@pytest.mark.parametrize("kind", sorted(ARCHIVES))
def test_links_that_escape_through_other_links_are_refused_in_any_order(tmp_path: Path, root: Path, kind: str,
                                                                       order: str) -> None:
    source, filename, base, build, folder = ARCHIVES[kind]
    chain = escaping_chain(folder)
    # links-last: each link is unpacked before the one it goes through exists (tarfile's own filter passes it)
    members = [*chain, *base] if order == "links-first" else [*base, *reversed(chain)]
    with pytest.raises(UserError, match=rf"refusing to unpack {filename}: member '.*' is a link to .*nothing was "
                                        "installed"):
        fetch_file(tmp_path, root, source, filename, build(members))
    assert links_under(tmp_path) == [] and not (root / source).exists()
    assert (tmp_path / SECRET).read_text() == "outside the data root"
    assert not root.exists()  # no staging folder, no download, and the data root the fetch made is gone


def test_a_later_link_over_an_earlier_folder_is_refused(tmp_path: Path, root: Path) -> None:
    members = [*CUB_BASE, ("CUB_200_2011/images/001.Albatross/1.jpg", "file", NOISE[:100]),
               ("CUB_200_2011/images", "sym", "README")]
    with pytest.raises(UserError, match=r"member 'CUB_200_2011/images' is a link where other members are unpacked"):
        fetch_file(tmp_path, root, "CUB", "CUB_200_2011.tgz", tar_bytes(members))
    assert links_under(tmp_path) == [] and not (root / "CUB").exists()


def test_a_member_below_an_earlier_link_is_refused(tmp_path: Path, root: Path) -> None:
    members = [*AWA2_BASE, ("Animals_with_Attributes2/JPEGImages", "sym", "predicates.txt"),
               ("Animals_with_Attributes2/JPEGImages/evil.jpg", "file", b"x")]
    with pytest.raises(UserError, match=r"'Animals_with_Attributes2/JPEGImages/evil.jpg' would be written through "
                                        r"the link 'Animals_with_Attributes2/JPEGImages'"):
        fetch_file(tmp_path, root, "AWA2", "AwA2-data.zip", zip_bytes(members))
    assert links_under(tmp_path) == [] and not (root / "AWA2").exists()


def test_links_to_files_inside_their_folder_are_unpacked_as_copies(tmp_path: Path, root: Path) -> None:
    image = "CUB_200_2011/images/001.Albatross/1.jpg"
    members = [("CUB_200_2011/images/alias.jpg", "sym", "001.Albatross/via.jpg"),  # a link through a later link
               *CUB_BASE, (image, "file", NOISE[:500]),
               ("CUB_200_2011/images/001.Albatross/via.jpg", "sym", "1.jpg"),
               ("CUB_200_2011/images/hard.jpg", "hard", image)]
    fetch_file(tmp_path, root, "CUB", "CUB_200_2011.tgz", tar_bytes(members))
    images = root / "CUB" / "CUB_200_2011" / "images"
    for name in ("alias.jpg", "001.Albatross/via.jpg", "hard.jpg"):
        assert (images / name).read_bytes() == NOISE[:500] and not (images / name).is_symlink()
    assert links_under(root) == []

    zipped = [*AWA2_BASE, ("Animals_with_Attributes2/JPEGImages/a/1.jpg", "file", NOISE[:300]),
              ("Animals_with_Attributes2/JPEGImages/b.jpg", "sym", "a/1.jpg")]
    fetch_file(tmp_path, root, "AWA2", "AwA2-data.zip", zip_bytes(zipped))
    copy = root / "AWA2" / "Animals_with_Attributes2" / "JPEGImages" / "b.jpg"
    assert copy.read_bytes() == NOISE[:300] and not copy.is_symlink()


@pytest.mark.parametrize("target, why", [
    ("001.Albatross", r"is a link to the folder 'CUB_200_2011/images/001.Albatross'"),
    ("missing.jpg", r"leads to 'CUB_200_2011/images/missing.jpg': no file the archive unpacks"),
    ("link", r"leads outside the archive through its other links \(or loops\)"),
])
def test_links_to_folders_to_nothing_or_in_loops_are_refused(tmp_path: Path, root: Path, target: str, why: str) -> None:
    members = [*CUB_BASE, ("CUB_200_2011/images/001.Albatross/1.jpg", "file", b"jpg"),
               ("CUB_200_2011/images/link", "sym", target)]
    with pytest.raises(UserError, match=why):
        fetch_file(tmp_path, root, "CUB", "CUB_200_2011.tgz", tar_bytes(members))
    assert not (root / "CUB").exists() and links_under(tmp_path) == []


def test_resolving_follows_links_before_their_dots() -> None:
    links = {"F/a/up": ("..", False), "F/a/up2": ("up/..", False), "F/a/up3": ("up2/../x", False)}
    assert resolve_in_archive("F/a/up", links) == "F"
    assert resolve_in_archive("F/a/up2", links) == ""  # normalised text says F/a; really the archive's top
    assert resolve_in_archive("F/a/up3", links) is None
    assert resolve_in_archive("F/a/up/b/c", links) == "F/b/c"
    assert resolve_in_archive("a", {"a": ("b", False), "b": ("a", False)}) is None  # a loop


@pytest.mark.parametrize("planted", [".downloads", "CUB"])
def test_folders_of_the_data_root_are_not_followed_out_of_it(serve, tmp_path: Path, root: Path, planted: str) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root.mkdir()
    (root / planted).symlink_to(outside)
    archive = cub_tgz()
    server = serve({"CUB_200_2011.tgz": archive})
    with pytest.raises(UserError, match=rf"\({root / planted}.*\) leads through a link to {outside}, outside "
                                        rf"{root}; zslbench does not write through it"):
        fetch("CUB", root, url=server.url("CUB_200_2011.tgz"), sha256=hashlib.sha256(archive).hexdigest(),
              check=False, **FAST)
    assert list(outside.iterdir()) == []


# --------------------------------------------------------------------------- streams read to their end
TAR_MEMBERS = [*CUB_BASE, ("CUB_200_2011/images/001.Albatross/1.jpg", "file", NOISE[:30_000]),
               ("CUB_200_2011/images/001.Albatross/2.jpg", "file", NOISE[30_000:])]


@pytest.fixture
def unpublished_cub(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUB source without its published size and md5: only the archive's own structure can tell."""
    monkeypatch.setitem(SOURCES, "CUB", dataclasses.replace(SOURCES["CUB"], size=None, md5=None))


def corrupted(compression: str) -> bytes:
    """The tar compressed so that one flipped byte of an image still decompresses (stored deflate blocks),
    or at least does not fail before the end of the members (xz, bz2)."""
    plain = tar_bytes(TAR_MEMBERS, compression="")
    if compression == "gz":
        data = bytearray(gzip.compress(plain, compresslevel=0))
        data[bytes(data).index(NOISE[40_000:40_040])] ^= 0xFF
    elif compression == "xz":
        data = bytearray(lzma.compress(plain, preset=0))
        data[-60] ^= 0x01  # in the last block: xz checks it only when the stream is read to its end
    else:
        data = bytearray(bz2.compress(plain))
        data[len(data) // 2] ^= 0x01
    return bytes(data)


@pytest.mark.parametrize("compression", ["gz", "xz", "bz2"])
def test_a_corrupted_compressed_tar_is_refused_at_its_crc(unpublished_cub, tmp_path: Path, root: Path,
                                                          compression: str) -> None:
    path = tmp_path / "CUB_200_2011.tgz"
    path.write_bytes(corrupted(compression))
    with pytest.raises(UserError, match=r"CUB_200_2011\.tgz is corrupt or truncated \(.*\); download it again"):
        fetch("CUB", root, url=str(path), check=False)
    assert not root.exists()  # the fetch created the data root, and removed it again


@pytest.mark.parametrize("compression", ["", "gz"])
def test_a_download_cut_at_a_member_boundary_without_content_length_is_refused(
        unpublished_cub, serve, root: Path, compression: str) -> None:
    plain = tar_bytes(TAR_MEMBERS, compression="")
    boundary = plain.index(NOISE[30_000:30_064]) - 512  # the header of the last image: the members before are whole
    whole = plain if not compression else gzip.compress(plain)
    server = serve({"CUB_200_2011.tgz": whole})
    server.announce_length = False
    server.cut_at = boundary if not compression else len(gzip.compress(plain)) - 4000
    with pytest.raises(UserError, match=r"CUB_200_2011\.tgz is (truncated or damaged \(no end-of-archive marker|"
                                        r"corrupt or truncated \(Compressed file ended).*it was deleted"):
        fetch("CUB", root, url=server.url("CUB_200_2011.tgz"), check=False, **FAST)
    assert not root.exists()

    server.cut_at = None  # the same server, the whole file: fine without a Content-Length
    result = fetch("CUB", root, url=server.url("CUB_200_2011.tgz"), check=False, **FAST)
    assert (root / "CUB" / "CUB_200_2011" / "images" / "001.Albatross" / "2.jpg").read_bytes() == NOISE[30_000:]
    assert result.sha256 == hashlib.sha256(whole).hexdigest() and result.verified_by == ""


def test_a_zip_member_shorter_than_its_index_says_is_refused(tmp_path: Path, root: Path) -> None:
    data = zip_bytes([("xlsa17/data/CUB/att_splits.mat", "file", b"fine"),
                      ("xlsa17/data/CUB/res101.mat", "file", NOISE[:3000])], method=zipfile.ZIP_STORED)
    lying = patch_zip_member(data, "xlsa17/data/CUB/res101.mat", None, 24, 5000, size=4)  # uncompressed size
    with pytest.raises(UserError, match=r"member 'xlsa17/data/CUB/res101\.mat' holds 3,000 bytes, its index says "
                                        r"5,000"):
        fetch_file(tmp_path, root, "xlsa17", "xlsa17.zip", lying)
    assert not root.exists()


def test_without_a_published_checksum_the_computed_sha256_is_said_and_recorded(unpublished_cub, tmp_path: Path,
                                                                               root: Path) -> None:
    from rich.console import Console

    path = tmp_path / "CUB_200_2011.tgz"
    path.write_bytes(cub_tgz())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    shown = io.StringIO()
    fetch("CUB", root, url=str(path), check=False, console=Console(file=shown, width=400))
    assert "has no published checksum" in shown.getvalue() and f"--sha256 {digest}" in shown.getvalue()
    record = json.loads((root / ".fetched.json").read_text())["CUB"]
    assert record["sha256"] == digest and record["verified_by"].startswith("none published")

    result = fetch("CUB", root, url=str(path), sha256=digest, check=False)  # pinned: verified, nothing to redo
    assert result.verified_by == "--sha256" and result.installed == []
    assert json.loads((root / ".fetched.json").read_text())["CUB"]["verified_by"] == "--sha256"


# --------------------------------------------------------------------------- how far an archive may expand
def test_an_archive_that_expands_too_far_is_refused_unless_the_limit_is_raised(tmp_path: Path, root: Path,
                                                                              capsys) -> None:
    zeros = b"\0" * (80 << 20)  # 80 MiB of zeros: an ~80 KB zip, a thousandfold expansion
    bomb = zip_bytes([("xlsa17/data/CUB/att_splits.mat", "file", b"fine"), ("xlsa17/data/CUB/res101.mat", "file",
                                                                           zeros)])
    path = tmp_path / "xlsa17.zip"
    path.write_bytes(bomb)
    argv = ["data", "fetch", "xlsa17", "--data-root", str(root), "--url", str(path), "--no-check"]
    code, _, err = invoke(argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "refusing to unpack xlsa17.zip: it expands to more than 64 MiB" in err and "--max-ratio" in err
    assert not root.exists()

    code, _, err = invoke([*argv, "--max-ratio", "5000"], capsys)
    assert code == 0, err
    assert (root / "CUB" / "res101.mat").stat().st_size == len(zeros)


def test_a_compressed_tar_bomb_is_stopped_while_it_is_decompressed(unpublished_cub, tmp_path: Path,
                                                                   root: Path) -> None:
    bomb = tar_bytes([*CUB_BASE, ("not-unpacked/zeros", "file", b"\0" * (8 << 20))])  # skipped, yet decompressed
    with pytest.raises(UserError, match=r"expands to more than 1 MiB .* raise the limits"):
        fetch_file(tmp_path, root, "CUB", "CUB_200_2011.tgz", bomb,
                   limits=UnpackLimits(max_ratio=10, ratio_floor_bytes=1 << 20))
    assert not root.exists()


# --------------------------------------------------------------------------- one line, exit 2, nothing left
@pytest.mark.parametrize("field, value, why", [
    ("method", 99, r"uses zip compression method 99, which Python's zipfile cannot read"),
    ("method", 9, r"uses zip compression method 9, which Python's zipfile cannot read"),  # deflate64
    ("flags", 1, r"member 'xlsa17/data/CUB/res101\.mat' is encrypted"),
])
def test_zip_members_python_cannot_read_are_one_line(tmp_path: Path, root: Path, capsys, field: str, value: int,
                                                     why: str) -> None:
    data = zip_bytes([("xlsa17/data/CUB/att_splits.mat", "file", b"fine"),
                      ("xlsa17/data/CUB/res101.mat", "file", NOISE[:3000])], method=zipfile.ZIP_STORED)
    local, central = (8, 10) if field == "method" else (6, 8)
    path = tmp_path / "xlsa17.zip"
    path.write_bytes(patch_zip_member(data, "xlsa17/data/CUB/res101.mat", local, central, value))
    code, out, err = invoke(["data", "fetch", "xlsa17", "--data-root", str(root), "--url", str(path)], capsys)
    assert code == 2 and "Traceback" not in out + err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert __import__("re").search(why, err), err
    assert not root.exists()


def test_a_disk_that_fills_during_a_download_is_one_line_and_leaves_nothing(serve, tmp_path: Path, capsys) -> None:
    archive = xlsa17_zip()
    server = serve({"xlsa17.zip": archive})
    root = tmp_path / "new" / "data"
    with file_size_limit(len(archive) // 2):
        code, out, err = invoke(["data", "fetch", "xlsa17", "--data-root", str(root), "--url",
                                 server.url("xlsa17.zip")], capsys)
    assert code == 2 and "Traceback" not in out + err, err
    assert len(err.strip().splitlines()) == 1 and "xlsa17.zip.part (File too large)" in err, err
    assert "the partial download was deleted" in err
    assert not (tmp_path / "new").exists()  # the data root and its parent were created by the fetch: gone


def test_a_failed_fetch_removes_the_folders_it_created_and_keeps_the_ones_it_found(tmp_path: Path) -> None:
    path = tmp_path / "xlsa17.zip"
    path.write_bytes(b"PK\x03\x04" + NOISE[:2000])
    with pytest.raises(UserError, match="neither a zip nor a tar"):
        fetch("xlsa17", tmp_path / "a" / "b" / "data", url=str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xlsa17.zip"]
    (tmp_path / "mine").mkdir()
    with pytest.raises(UserError):
        fetch("xlsa17", tmp_path / "mine", url=str(path))
    assert (tmp_path / "mine").is_dir() and list((tmp_path / "mine").iterdir()) == []


def test_fetching_the_same_archive_again_says_identical_and_a_real_difference_says_which(tmp_path: Path, root: Path,
                                                                                        capsys) -> None:
    path = tmp_path / "CUB_200_2011.tgz"
    path.write_bytes(cub_tgz())
    argv = ["data", "fetch", "CUB", "--data-root", str(root), "--url", str(path), "--sha256",
            hashlib.sha256(path.read_bytes()).hexdigest(), "--no-check"]
    assert invoke(argv, capsys)[0] == 0
    code, out, err = invoke(argv, capsys)
    assert code == 0 and "already exist" not in out + err, out + err
    assert "nothing to install: the 4 file(s) of CUB_200_2011.tgz are already in place" in " ".join(out.split())

    image = next((root / "CUB" / "CUB_200_2011" / "images").rglob("*.jpg"))
    image.write_bytes(b"edited")
    code, out, err = invoke(argv, capsys)
    assert code == 2 and f"1 path(s) already exist and differ from the archive ({image}) (3 other file(s) are " \
                          "identical)" in " ".join(err.split()), err
    assert image.read_bytes() == b"edited"
    assert os.listdir(root) == ["CUB", ".fetched.json"] or sorted(os.listdir(root)) == [".fetched.json", "CUB"]


def test_a_link_planted_at_the_feature_cache_folder_is_not_followed(tmp_path: Path) -> None:
    from zslbench.data.feature_cache.key import cache_root

    dataset, outside = tmp_path / "data" / "CUB", tmp_path / "elsewhere"
    dataset.mkdir(parents=True)
    outside.mkdir()
    (dataset / ".cache").symlink_to(outside)
    with pytest.raises(UserError, match=r"the feature cache folder .* leads through a link to .*elsewhere/features"):
        cache_root(dataset)
    assert list(outside.iterdir()) == []  # no features/ folder made through the link
    (dataset / ".cache").unlink()
    assert cache_root(dataset) == dataset / ".cache" / "features"  # a real folder is used as before


def test_word_vectors_are_not_fetched_through_a_link_out_of_the_data_root(tmp_path: Path, root: Path) -> None:
    from zslbench.data.fetch.files import fetch_word_vectors

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root.mkdir()
    (root / "CUB").symlink_to(outside)
    with pytest.raises(UserError, match=r"the word-vector file .* leads through a link to .*elsewhere"):
        fetch_word_vectors(root, ["CUB"], base_url=str(tmp_path / "mirror"))
    assert list(outside.iterdir()) == []


def test_a_later_link_over_unpacked_members_is_refused_even_where_nothing_is_installed(tmp_path: Path,
                                                                                      root: Path) -> None:
    members = [("xlsa17/data/CUB/att_splits.mat", "file", b"splits"), ("xlsa17/data", "sym", "CUB")]
    with pytest.raises(UserError, match=r"member 'xlsa17/data' is a link where other members are unpacked"):
        fetch_file(tmp_path, root, "xlsa17", "xlsa17.zip", tar_bytes(members))  # a tar, whatever its name
    assert not root.exists()
