"""`zslbench data fetch` against a real HTTP server on 127.0.0.1 serving archives built here.

The archives have the real xlsa17 / CUB layouts with tiny content. The server supports Range
requests and can drop a connection midway, ignore Range, and serve any bytes it is given (a
truncated or wrong file), so every download path runs for real, offline.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from zslbench.data import fetch as fetch_module
from zslbench.data.fetch import SOURCES, fetch
from zslbench.core.errors import UserError

pytestmark = pytest.mark.timeout(60)

FAST = {"retries": 3, "backoff_s": 0.0, "timeout_s": 10.0}


# --------------------------------------------------------------------------- the test server
class ArchiveServer:
    """A threaded HTTP/1.1 server with switches for the failure modes a download must survive."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.drops_left = 0  # this many responses stop after `drop_after` body bytes
        self.drop_after = 1000
        self.ignore_range = False
        self.announce_length = True  # False: no Content-Length, the end of the body is the connection closing
        self.cut_at: int | None = None  # send only this many body bytes, then close as if the body ended
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 5  # bounds every connection

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                owner.serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        name = handler.path.lstrip("/")
        requested = handler.headers.get("Range")
        self.requests.append((name, requested))
        body = self.files.get(name)
        if body is None:
            handler.send_error(404, "Not Found")
            return
        start = 0
        if requested and not self.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(body):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(body)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            handler.send_response(200)
        payload = body[start:]
        if not self.announce_length:  # an HTTP/1.0-style body: the client reads until the connection closes
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(payload[: self.cut_at])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if self.drops_left > 0:  # announce everything, send a part, hang up
            self.drops_left -= 1
            handler.wfile.write(payload[: self.drop_after])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.wfile.write(payload)

    def __enter__(self) -> "ArchiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve():
    servers: list[ArchiveServer] = []

    def start(files: dict[str, bytes]) -> ArchiveServer:
        server = ArchiveServer(files).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


# --------------------------------------------------------------------------- archives in the real layouts
NOISE = np.random.default_rng(0).bytes(48_000)  # incompressible, so archives are large enough to cut


def xlsa17_zip(extra: dict[str, bytes] | None = None, cub_files: dict[str, bytes] | None = None) -> bytes:
    """xlsa17.zip: xlsa17/data/<DS>/{att_splits.mat,res101.mat,*.txt} plus a top-level README."""
    members = {"xlsa17/README.txt": b"Proposed Split Version 2.0\n"}
    for dataset in ("AWA1", "AWA2", "CUB", "SUN", "APY"):
        members[f"xlsa17/data/{dataset}/att_splits.mat"] = f"splits of {dataset}".encode()
        members[f"xlsa17/data/{dataset}/res101.mat"] = NOISE if dataset == "CUB" else f"features {dataset}".encode()
        members[f"xlsa17/data/{dataset}/trainvalclasses.txt"] = b"001.class\n"
    if cub_files is not None:  # a real-shaped CUB alone
        members = {"xlsa17/README.txt": members["xlsa17/README.txt"]}
        members.update({f"xlsa17/data/CUB/{name}": data for name, data in cub_files.items()})
    members.update(extra or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("xlsa17/", b"")
        bundle.writestr("xlsa17/data/", b"")
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


CUB_ATTRIBUTES = b"1 has_bill_shape::curved_(up_or_down)\n2 has_bill_shape::dagger\n3 has_bill_shape::hooked\n"
CUB_IMAGES = {
    "CUB_200_2011/images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg": NOISE[:4000],
    "CUB_200_2011/images/002.Laysan_Albatross/Laysan_Albatross_0001_545.jpg": NOISE[4000:8000],
}


def cub_tgz(images: dict[str, bytes] | None = None, special: list[tarfile.TarInfo] | None = None) -> bytes:
    """CUB_200_2011.tgz: CUB_200_2011/{images/...,README} and attributes.txt at the top."""
    members = {"CUB_200_2011/README": b"CUB-200-2011\n", "attributes.txt": CUB_ATTRIBUTES,
               **(images if images is not None else CUB_IMAGES)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
        for info in special or []:
            bundle.addfile(info)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[str]:
    """Temporary unpack folders and partial downloads left under the data root."""
    return sorted(p.name for p in root.rglob("*") if p.name.startswith(".fetch-") or p.name.endswith(".part"))


def assert_no_dataset_dirs(root: Path) -> None:
    assert not any((root / d).exists() for d in ("CUB", "AWA1", "AWA2", "SUN", "APY"))
    assert leftovers(root) == [] and not list(root.rglob("*evil*"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --------------------------------------------------------------------------- normal fetches
def test_xlsa17_over_http_lands_each_dataset_folder(serve, root: Path) -> None:
    archive = xlsa17_zip()
    server = serve({"xlsa17.zip": archive})
    result = fetch("xlsa17", root, url=server.url("xlsa17.zip"), check=False, **FAST)
    for dataset in ("CUB", "AWA1", "AWA2", "SUN", "APY"):
        assert (root / dataset / "att_splits.mat").read_bytes() == f"splits of {dataset}".encode()
        assert (root / dataset / "trainvalclasses.txt").is_file()
    assert (root / "CUB" / "res101.mat").read_bytes() == NOISE
    assert sorted(p.name for p in root.iterdir()) == [".fetched.json", "APY", "AWA1", "AWA2", "CUB", "SUN"]  # no README
    assert sorted(p.name for p in result.installed) == ["APY", "AWA1", "AWA2", "CUB", "SUN"]
    assert server.requests == [("xlsa17.zip", None)]


def test_cub_images_join_an_existing_cub_folder(serve, root: Path) -> None:
    (root / "CUB").mkdir(parents=True)
    (root / "CUB" / "att_splits.mat").write_bytes(b"already here")
    archive = cub_tgz()
    server = serve({"CUB_200_2011.tgz": archive})
    fetch("CUB", root, url=server.url("CUB_200_2011.tgz"), sha256=sha256(archive), check=False, **FAST)
    for name, data in CUB_IMAGES.items():
        assert (root / "CUB" / name).read_bytes() == data
    assert (root / "CUB" / "attributes.txt").read_text().startswith("1 has_bill_shape")
    assert (root / "CUB" / "CUB_200_2011" / "README").is_file()
    assert (root / "CUB" / "att_splits.mat").read_bytes() == b"already here"
    assert not (root / ".downloads").exists()  # the archive is removed after a successful install


def test_sun_top_folder_is_stripped(tmp_path: Path, root: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        info = tarfile.TarInfo("SUNAttributeDB_Images/images/a/abbey/sun_aaa.jpg")
        info.size = 3
        bundle.addfile(info, io.BytesIO(b"jpg"))
    path = tmp_path / "SUNAttributeDB_Images.tar.gz"
    path.write_bytes(buffer.getvalue())
    fetch("SUN", root, url=str(path), check=False)
    assert (root / "SUN" / "images" / "a" / "abbey" / "sun_aaa.jpg").read_bytes() == b"jpg"
    assert path.is_file()  # a local archive is used in place and never deleted


def test_local_file_url_and_plain_path(tmp_path: Path, root: Path) -> None:
    path = tmp_path / "xlsa17.zip"
    path.write_bytes(xlsa17_zip())
    fetch("xlsa17", root, url=path.as_uri(), check=False)
    assert (root / "SUN" / "att_splits.mat").is_file()
    fetch("xlsa17", root, url=str(path), check=False)  # identical files: nothing to do, no error
    assert path.is_file() and leftovers(root) == []


# --------------------------------------------------------------------------- interrupted downloads
def test_resume_after_a_dropped_connection_continues_from_the_partial_size(serve, root: Path) -> None:
    archive = xlsa17_zip()
    server = serve({"xlsa17.zip": archive})
    server.drops_left, server.drop_after = 1, 20_000
    fetch("xlsa17", root, url=server.url("xlsa17.zip"), sha256=sha256(archive), keep_archive=True,
          check=False, **FAST)
    assert server.requests == [("xlsa17.zip", None), ("xlsa17.zip", "bytes=20000-")]
    assert sha256((root / ".downloads" / "xlsa17.zip").read_bytes()) == sha256(archive)
    assert (root / "CUB" / "res101.mat").read_bytes() == NOISE


def test_a_server_ignoring_range_makes_the_download_restart_from_zero(serve, root: Path) -> None:
    archive = xlsa17_zip()
    server = serve({"xlsa17.zip": archive})
    server.drops_left, server.drop_after, server.ignore_range = 1, 20_000, True
    fetch("xlsa17", root, url=server.url("xlsa17.zip"), sha256=sha256(archive), keep_archive=True,
          check=False, **FAST)
    assert server.requests == [("xlsa17.zip", None), ("xlsa17.zip", "bytes=20000-")]
    assert (root / ".downloads" / "xlsa17.zip").read_bytes() == archive  # not 20000 bytes + the whole file


def test_a_complete_partial_file_answered_with_416_is_verified_and_used(serve, root: Path) -> None:
    archive = xlsa17_zip()
    server = serve({"xlsa17.zip": archive})
    (root / ".downloads").mkdir(parents=True)
    (root / ".downloads" / "xlsa17.zip.part").write_bytes(archive)
    fetch("xlsa17", root, url=server.url("xlsa17.zip"), sha256=sha256(archive), check=False, **FAST)
    assert server.requests == [("xlsa17.zip", f"bytes={len(archive)}-")]
    assert (root / "AWA2" / "att_splits.mat").is_file() and leftovers(root) == []


def test_bounded_retries_then_a_clear_error_and_a_rerun_resumes(serve, root: Path) -> None:
    archive = xlsa17_zip()
    server = serve({"xlsa17.zip": archive})
    server.drops_left, server.drop_after = 3, 10_000
    with pytest.raises(UserError, match=r"broke off \(the connection closed at byte 30,000 of .*\) after 3 tries.*"
                                        r"re-run the same command to resume"):
        fetch("xlsa17", root, url=server.url("xlsa17.zip"), **FAST)
    assert (root / ".downloads" / "xlsa17.zip.part").stat().st_size == 30_000
    assert not (root / "CUB").exists()
    fetch("xlsa17", root, url=server.url("xlsa17.zip"), sha256=sha256(archive), check=False, **FAST)
    assert server.requests[-1] == ("xlsa17.zip", "bytes=30000-")
    assert (root / "CUB" / "res101.mat").read_bytes() == NOISE and leftovers(root) == []


# --------------------------------------------------------------------------- bad files
def test_truncated_zip_is_a_clear_error_and_nothing_is_unpacked(serve, root: Path) -> None:
    archive = xlsa17_zip()
    server = serve({"xlsa17.zip": archive[: len(archive) // 2]})
    with pytest.raises(UserError, match=r"xlsa17.zip is neither a zip nor a tar archive \(corrupt or truncated\)"
                                        r".*it was deleted"):
        fetch("xlsa17", root, url=server.url("xlsa17.zip"), **FAST)
    assert_no_dataset_dirs(root)
    assert not (root / ".downloads").exists()


def test_a_damaged_member_midway_leaves_nothing_unpacked(tmp_path: Path, root: Path) -> None:
    archive = bytearray(xlsa17_zip())
    position = bytes(archive).index(NOISE[1000:1100])  # inside CUB/res101.mat, after AWA1 and AWA2 members
    archive[position] ^= 0xFF
    path = tmp_path / "xlsa17.zip"
    path.write_bytes(bytes(archive))
    with pytest.raises(UserError, match=r"xlsa17.zip is corrupt or truncated \(Bad CRC-32 .*\); download it again"):
        fetch("xlsa17", root, url=str(path))
    assert_no_dataset_dirs(root)


def test_truncated_tgz_is_a_clear_error_and_nothing_is_unpacked(serve, root: Path, monkeypatch) -> None:
    monkeypatch.setitem(SOURCES, "CUB", dataclasses.replace(SOURCES["CUB"], size=None, md5=None))
    archive = cub_tgz()
    server = serve({"CUB_200_2011.tgz": archive[: len(archive) - 2000]})
    with pytest.raises(UserError, match=r"CUB_200_2011.tgz is corrupt or truncated \(.*\); it was deleted"):
        fetch("CUB", root, url=server.url("CUB_200_2011.tgz"), **FAST)
    assert_no_dataset_dirs(root)


def test_a_file_of_the_wrong_size_is_refused_before_downloading_it(serve, root: Path) -> None:
    server = serve({"CUB_200_2011.tgz": cub_tgz()})  # the table knows the real size: 1,150,585,339 bytes
    with pytest.raises(UserError, match=r"is \d[\d,]* bytes but the expected file has 1,150,585,339.*--sha256"):
        fetch("CUB", root, url=server.url("CUB_200_2011.tgz"), **FAST)
    assert_no_dataset_dirs(root)


def test_random_bytes_are_not_an_archive(serve, root: Path) -> None:
    server = serve({"xlsa17.zip": NOISE})
    with pytest.raises(UserError, match="neither a zip nor a tar archive"):
        fetch("xlsa17", root, url=server.url("xlsa17.zip"), **FAST)
    assert_no_dataset_dirs(root)


def test_checksum_mismatch_deletes_the_download(serve, root: Path) -> None:
    archive = xlsa17_zip()
    server = serve({"xlsa17.zip": xlsa17_zip(extra={"xlsa17/data/CUB/extra.txt": b"tampered"})})
    with pytest.raises(UserError, match=rf"corrupt: sha256 [0-9a-f]{{64}}, expected {sha256(archive)}; it was deleted"):
        fetch("xlsa17", root, url=server.url("xlsa17.zip"), sha256=sha256(archive), **FAST)
    assert not (root / ".downloads").exists()  # neither the .part nor an empty folder stays
    assert_no_dataset_dirs(root)


def _zip_with(name: str, data: bytes = b"x", mode: int | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("xlsa17/data/CUB/att_splits.mat", b"fine")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        bundle.writestr(info, data)
    return buffer.getvalue()


def _tar_member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


UNSAFE = {
    "zip ../ member": ("xlsa17", lambda: _zip_with("../evil.txt"), "'..' path component"),
    "zip nested ../ member": ("xlsa17", lambda: _zip_with("xlsa17/data/CUB/../../../evil.txt"), "'..' path component"),
    "zip absolute member": ("xlsa17", lambda: _zip_with("/tmp/zslbench-evil.txt"), "absolute path"),
    "zip symlink to /etc": ("xlsa17", lambda: _zip_with("xlsa17/data/CUB/evil", b"/etc", stat.S_IFLNK | 0o777),
                            "link to the absolute path '/etc'"),
    "zip symlink out of its folder": ("xlsa17", lambda: _zip_with("xlsa17/data/CUB/evil", b"../../README.txt",
                                                                  stat.S_IFLNK | 0o777), "outside its folder"),
    "tar symlink to /etc": ("CUB", lambda: cub_tgz(special=[_tar_member("CUB_200_2011/images/evil", tarfile.SYMTYPE,
                                                                        "/etc")]), "link to the absolute path"),
    "tar symlink escaping": ("CUB", lambda: cub_tgz(special=[_tar_member("CUB_200_2011/evil", tarfile.SYMTYPE,
                                                                         "../../etc")]), "outside the archive"),
    "tar hardlink escaping": ("CUB", lambda: cub_tgz(special=[_tar_member("CUB_200_2011/evil", tarfile.LNKTYPE,
                                                                          "../etc/passwd")]), "outside the archive"),
    "tar device": ("CUB", lambda: cub_tgz(special=[_tar_member("CUB_200_2011/evil", tarfile.CHRTYPE)]),
                   "device or other special file"),
    "tar ../ member": ("CUB", lambda: cub_tgz(images={"CUB_200_2011/../../evil.jpg": b"x"}), "'..' path component"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path: Path, root: Path, case: str) -> None:
    name, build, why = UNSAFE[case]
    path = tmp_path / ("xlsa17.zip" if name == "xlsa17" else "CUB_200_2011.tgz")
    data = build()
    path.write_bytes(data)
    with pytest.raises(UserError, match=rf"refusing to unpack {path.name}: member .* {re.escape(why)}"):
        fetch(name, root, url=str(path), sha256=sha256(data), check=False)
    assert_no_dataset_dirs(root)
    assert not list(tmp_path.rglob("*evil*")) and not Path("/tmp/zslbench-evil.txt").exists()


# --------------------------------------------------------------------------- existing data
def test_a_failed_fetch_leaves_an_existing_dataset_untouched(serve, root: Path) -> None:
    (root / "CUB").mkdir(parents=True)
    (root / "CUB" / "att_splits.mat").write_bytes(b"mine")
    (root / "CUB" / "notes.txt").write_bytes(b"keep")
    before = snapshot(root)
    server = serve({"xlsa17.zip": NOISE, "ok.zip": xlsa17_zip()})
    with pytest.raises(UserError, match="neither a zip nor a tar"):
        fetch("xlsa17", root, url=server.url("xlsa17.zip"), **FAST)
    assert snapshot(root) == before

    # a good archive whose att_splits.mat differs: refused as a whole, nothing moves
    conflict = r"1 path\(s\) already exist and differ .*CUB/att_splits.mat.*--force.*stays in"
    with pytest.raises(UserError, match=conflict):
        fetch("xlsa17", root, url=server.url("ok.zip"), **FAST)
    assert {k: v for k, v in snapshot(root).items() if not k.startswith(".downloads")} == before
    assert leftovers(root) == [] and not (root / "AWA2").exists()
    assert (root / ".downloads" / "ok.zip").is_file()  # verified download kept for the re-run
    fetch("xlsa17", root, url=server.url("ok.zip"), force=True, check=False, **FAST)
    assert (root / "CUB" / "att_splits.mat").read_bytes() == b"splits of CUB"
    assert (root / "CUB" / "notes.txt").read_bytes() == b"keep" and (root / "AWA2").is_dir()


# --------------------------------------------------------------------------- network errors
def test_unreachable_host_says_how_to_use_a_local_copy(root: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match=r"cannot reach 127.0.0.1 .*no route to the internet.*--url file:///"):
        fetch("xlsa17", root, url=f"http://127.0.0.1:{port}/xlsa17.zip", **FAST)
    assert_no_dataset_dirs(root)
    assert not (root / ".downloads").exists()


def test_http_404_is_a_user_error(serve, root: Path) -> None:
    server = serve({})
    with pytest.raises(UserError, match="HTTP 404"):
        fetch("xlsa17", root, url=server.url("xlsa17.zip"), **FAST)


# --------------------------------------------------------------------------- end-of-run check
def _real_shaped_cub(build: Path) -> dict[str, bytes]:
    """att_splits.mat + res101.mat of a 2-class CUB whose image paths are the authors' absolute ones."""
    from zslbench.data.xlsa17 import write_split_files

    files = [f"/BS/xian/work/data/{name}" for name in CUB_IMAGES]
    write_split_files(build, original_att=np.array([[10.0, 0.0, 5.0], [0.0, 20.0, 5.0]]),
                      class_names=["001.Black_footed_Albatross", "002.Laysan_Albatross"],
                      labels=np.array([0, 1]), image_files=files,
                      locs={"trainval": np.array([0]), "test_seen": np.array([], dtype=int),
                            "test_unseen": np.array([1])})
    return {p.name: p.read_bytes() for p in build.iterdir()}


def test_check_after_fetch_explains_missing_images_then_passes(tmp_path: Path, root: Path, monkeypatch) -> None:
    from rich.console import Console

    from zslbench.data import xlsa17

    monkeypatch.delitem(xlsa17.EXPECTED_COUNTS, "CUB")  # the tiny stand-in has 2 classes, not 200
    splits = tmp_path / "xlsa17.zip"
    splits.write_bytes(xlsa17_zip(cub_files=_real_shaped_cub(tmp_path / "build")))
    output = io.StringIO()
    result = fetch("xlsa17", root, url=str(splits), console=Console(file=output, width=300))
    printed = output.getvalue()
    assert "images come from the dataset's own archive: `zslbench data fetch CUB" in printed
    assert not result.check_failed and result.reports["CUB"].missing

    images = tmp_path / "CUB_200_2011.tgz"
    images.write_bytes(cub_tgz())
    output = io.StringIO()
    result = fetch("CUB", root, url=str(images), sha256=sha256(images.read_bytes()), console=Console(file=output))
    assert not isinstance(result.reports["CUB"], str), result.reports["CUB"]
    assert result.reports["CUB"].ok and not result.check_failed
    assert "CUB: OK" in output.getvalue()


def test_check_after_fetch_fails_on_unreadable_split_files(tmp_path: Path, root: Path) -> None:
    from rich.console import Console

    path = tmp_path / "xlsa17.zip"
    path.write_bytes(xlsa17_zip())  # its .mat files are stand-in bytes
    output = io.StringIO()
    result = fetch("xlsa17", root, url=str(path), console=Console(file=output, width=300))
    assert result.check_failed and (root / "CUB" / "att_splits.mat").is_file()
    assert "CUB: not checked (" in output.getvalue() and "att_splits.mat is unreadable or corrupt" in output.getvalue()


# --------------------------------------------------------------------------- command line
def _cli(argv: list[str]) -> int:
    from zslbench.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_fetch_and_bad_names(serve, root: Path, capsys) -> None:
    server = serve({"xlsa17.zip": xlsa17_zip()})
    assert _cli(["data", "fetch", "xlsa17", "--data-root", str(root), "--url", server.url("xlsa17.zip"),
                 "--no-check"]) == 0
    assert (root / "CUB" / "att_splits.mat").is_file()
    # installed, but the end-of-run check cannot read the stand-in .mat files: exit code 1
    assert _cli(["data", "fetch", "xlsa17", "--data-root", str(root / "other"), "--url",
                 server.url("xlsa17.zip")]) == 1
    capsys.readouterr()
    assert _cli(["data", "fetch", "CUBB", "--data-root", str(root)]) == 2
    error = capsys.readouterr().err
    assert "unknown archive 'CUBB'; valid choices: AWA2, CUB, SUN, xlsa17. Did you mean 'CUB'?" in error
    assert _cli(["data", "fetch", "CUB", "--data-root", str(root), "--sha256", "abc"]) == 2
    assert "--sha256 must be 64 hexadecimal digits" in capsys.readouterr().err


def test_every_source_maps_into_dataset_folders() -> None:
    for name, source in SOURCES.items():
        assert source.url.startswith("https://") and source.filename == source.url.rsplit("/", 1)[1]
        assert source.archive in ("zip", "tar") and source.holds in ("splits", "images")
        for archive_path, destination in source.layout:
            assert destination.split("/", 1)[0] in ("CUB", "AWA1", "AWA2", "SUN", "APY")
            assert archive_path.endswith("/") == destination.endswith("/")
    assert fetch_module.local_path("https://x/y.zip") is None
