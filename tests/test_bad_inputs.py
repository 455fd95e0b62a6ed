"""Bad inputs end to end through the CLI: every one exits with code 2, prints one clear line and no
traceback, and leaves earlier results untouched.

One table (``CASES``) spans the CLI, config and data layers: unknown names, ill-typed and out-of-range
``--set`` values, broken config files, truncated or corrupt ``.mat`` files, wrong shapes, labels and
split indices out of range, overlapping splits, NaN/inf or all-zero attribute rows, a class without
images, missing/corrupt/truncated images and images of the wrong pixel mode, unusable word vectors,
the ``val`` γ policy on a dataset without a val split, unknown or empty experiments, malformed or
unreachable tracking and study URLs, a read-only data root and a full disk.

Each case builds its bad input under ``tmp_path`` and returns the argv; the command runs in-process
through :func:`zslbench.cli.main` (the real exit-code mapping) in a working directory that holds an
earlier finished, tracked run (``runs/``, ``mlflow.db``, ``mlruns/``) and its dataset. Afterwards every
earlier file must be byte-identical and no file may be left half-written in the case's own folder.

A full disk is simulated with ``RLIMIT_FSIZE`` (writes past the limit fail with EFBIG, SIGXFSZ ignored);
a read-only directory with ``chmod`` or, for root (whom permissions do not stop), ``chattr +i``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import scipy.io
from PIL import Image

from test_xlsa17 import PER_CLASS, rewrite_mat, tiny_locs, write_tiny_dataset
from zslbench.cli import main

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
DATASET = "CUB"  # the run command accepts only known dataset names; a tiny xlsa17 directory stands in
#: A one-epoch run of a tiny model on the tiny dataset.
TRACKED_RUN = ["run", "--dataset", DATASET, "--preset", "tiny", "--epochs", "1", "--set", "train.warmup_epochs=0",
               "--set", "data.word_vectors=random"]
#: The same with tracking off, so the earlier MLflow store stays as it is.
RUN = [*TRACKED_RUN, "--set", "track.enabled=false"]


# --------------------------------------------------------------------------- running the CLI
def invoke(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``zslbench ARGV`` in-process: (exit code, stdout, stderr); an escaped exception is code 1
    with its traceback appended to stderr, as a user would see it."""
    escaped = ""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:  # noqa: BLE001 — exactly what the CLI must never let through
        code, escaped = 1, traceback.format_exc()
    out, err = capsys.readouterr()
    return code, ANSI.sub("", out), ANSI.sub("", err) + escaped


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """A full disk for this process: writing past ``limit`` bytes of any file fails with EFBIG."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path → digest)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- the earlier results
@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A working directory with a finished, tracked tiny run (runs/, mlflow.db, mlruns/), its dataset
    (data/CUB) and an MLflow experiment ``empty`` without runs. Returns (directory, run id)."""
    workdir = tmp_path_factory.mktemp("earlier")
    write_tiny_dataset(workdir / "data" / DATASET, image_size=16)
    with pytest.MonkeyPatch.context() as patch:
        _clean_environment(patch)
        patch.chdir(workdir)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main([*TRACKED_RUN, "--data-root", "data", "--json", "first.json"])
    run_id = json.loads((workdir / "first.json").read_text())["run_id"]
    import mlflow

    mlflow.MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").create_experiment("empty")
    return workdir, run_id


def _clean_environment(patch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "ZSLBENCH_DATA", "ZSLBENCH_OPTUNA_STORAGE"):
        patch.delenv(name, raising=False)
    patch.setenv("NO_COLOR", "1")


@dataclass
class Ctx:
    """What a case may use: its own folder, the earlier run, and undo actions for read-only folders."""

    tmp: Path
    workdir: Path
    run_id: str
    port: int
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    fsize: int | None = None  # set by a case: simulate a full disk while the command runs

    def dataset(self, images: bool = False, name: str = DATASET) -> Path:
        """A fresh tiny xlsa17 dataset directory ``<tmp>/data/<name>`` (6 classes, 5 attributes, 30 images)."""
        return write_tiny_dataset(self.tmp / "data" / name, images=images, image_size=16)

    def read_only(self, *paths: Path) -> None:
        """Make ``paths`` unwritable, for root too (``chattr +i``); skip when no mechanism works here."""
        if os.geteuid() != 0:
            for path in paths:
                path.chmod(0o555)
                self.cleanups.append(lambda p=path: p.chmod(0o755))
        else:
            for path in paths:
                done = subprocess.run(["chattr", "+i", str(path)], capture_output=True) if shutil.which("chattr") else None
                if done is None or done.returncode != 0:
                    pytest.skip("running as root and `chattr +i` is unavailable: no way to make a folder read-only")
                self.cleanups.append(lambda p=path: subprocess.run(["chattr", "-i", str(p)], check=True))
        probe = paths[0] / ".write-probe"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        pytest.skip("the folder stays writable (file system without permissions or immutable flag)")


Build = Callable[[Ctx], list[str]]


# --------------------------------------------------------------------------- case builders
def dry(*args: str) -> Build:
    """``zslbench run ARGS --dry-run``: resolves the config only."""
    return lambda ctx: ["run", *args, "--dry-run"]


def argv(*args: str) -> Build:
    return lambda ctx: list(args)


def config_file(text: str | bytes) -> Build:
    """``run --config FILE --dry-run`` with ``FILE`` holding ``text``."""
    def build(ctx: Ctx) -> list[str]:
        path = ctx.tmp / "resolved.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["run", "--config", str(path), "--dry-run"]
    return build


def info_after(change: Callable[[Path], None]) -> Build:
    """``data info`` of a tiny dataset after ``change(dataset directory)``."""
    def build(ctx: Ctx) -> list[str]:
        directory = ctx.dataset()
        change(directory)
        return ["data", "info", "--dataset", DATASET, "--data-root", str(directory.parent)]
    return build


def run_after(change: Callable[[Path], None], *extra: str) -> Build:
    """A tiny run (tracking off) on a tiny dataset with images after ``change(dataset directory)``."""
    def build(ctx: Ctx) -> list[str]:
        directory = ctx.dataset(images=True)
        change(directory)
        return [*RUN, "--data-root", str(directory.parent), *extra]
    return build


def good_run(*extra: str) -> Build:
    """A tiny run on an intact dataset, with ``extra`` options (``{port}`` → a closed port, ``{tmp}`` → the case folder)."""
    def build(ctx: Ctx) -> list[str]:
        directory = ctx.dataset(images=True)
        return [*RUN, "--data-root", str(directory.parent), *(a.format(port=ctx.port, tmp=ctx.tmp) for a in extra)]
    return build


def unchanged(directory: Path) -> None:
    """No change: the case's bad input is an option."""


def edit_mat(file: str, **changes: Any) -> Callable[[Path], None]:
    """Re-save ``file`` with variables replaced: a value, ``None`` (removed) or ``f(current mat) → value``."""
    def change(directory: Path) -> None:
        content = scipy.io.loadmat(str(directory / file))
        rewrite_mat(directory / file, **{k: (v(content) if callable(v) else v) for k, v in changes.items()})
    return change


def set_entry(name: str, index: tuple[int, int], value: float) -> Callable[[dict], np.ndarray]:
    def edit(content: dict) -> np.ndarray:
        array = content[name].astype(np.float64)
        array[index] = value
        return array
    return edit


def zero_class(content: dict) -> np.ndarray:
    original = content["original_att"].astype(np.float64)
    original[:, 2] = 0.0  # class c2: no attribute at all
    return original


def locs_column(values: Any) -> np.ndarray:
    """0-based indices → the 1-based float column xlsa17 stores."""
    return (np.asarray(values, dtype=np.float64) + 1).reshape(-1, 1)


def labels_column(edit: Callable[[np.ndarray], None]) -> np.ndarray:
    labels = np.repeat(np.arange(6), PER_CLASS).astype(np.float64) + 1
    edit(labels)
    return labels.reshape(-1, 1)


def write_bytes(relative: str, data: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def change(directory: Path) -> None:
        path = directory / relative
        path.write_bytes(data(path.read_bytes()) if callable(data) else data)
    return change


def remove(relative: str) -> Callable[[Path], None]:
    return lambda directory: (directory / relative).unlink()


def image_array(relative: str, pixels: np.ndarray, image_format: str = "PNG") -> Callable[[Path], None]:
    return lambda directory: Image.fromarray(pixels).save(directory / relative, format=image_format)


def replace_with_folder(relative: str) -> Callable[[Path], None]:
    def change(directory: Path) -> None:
        (directory / relative).unlink()
        (directory / relative).mkdir()
    return change


def damage_mat_byte(variable: str, offset: Callable[[bytes, int], int], value: int) -> Callable[[Path], None]:
    """Set one byte of att_splits.mat inside ``variable``'s element (``offset(file, element start)``)."""
    def change(directory: Path) -> None:
        path = directory / "att_splits.mat"
        data = bytearray(path.read_bytes())
        position = 128
        while True:  # top-level elements of an uncompressed MAT v5 file: tag (type, size), then data
            size = int.from_bytes(data[position + 4:position + 8], "little")
            if data.find(variable.encode(), position, position + 8 + size) > 0:
                break
            position += 8 + size + (-size % 8)
        data[offset(bytes(data), position)] = value
        path.write_bytes(bytes(data))
    return change


def data_type_byte(data: bytes, start: int) -> int:
    """The second byte of the type code of the variable's first data element (after flags, dims, name)."""
    name = data.index(b"original_att", start)
    return name + 16 + 1  # the 12-character name is padded to 16 bytes, then the data tag


def complex_flag_byte(data: bytes, start: int) -> int:
    return start + 8 + 8 + 1  # matrix tag, flags tag, then the flags word: class byte, flags byte


def matlab_v73(directory: Path) -> None:
    """An HDF5-based MATLAB 7.3 header (what ``save -v7.3`` writes), which scipy cannot read."""
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116, b" ") + b"\x00" * 8
    (directory / "att_splits.mat").write_bytes(header + b"\x00\x02IM" + b"\x89HDF\r\n\x1a\n" + b"\x00" * 256)


def meta_npz(**content: Any) -> Callable[[Path], None]:
    """Replace res101.mat by a res101_meta.npz holding ``content``."""
    def change(directory: Path) -> None:
        (directory / "res101.mat").unlink()
        np.savez(directory / "res101_meta.npz", **content)
    return change


def sent_splits_of_another_split(directory: Path) -> None:
    rewrite_mat(directory / "att_splits.mat", train_loc=None, val_loc=None)
    scipy.io.savemat(str(directory / "sent_splits.mat"), {
        "trainval_loc": locs_column(tiny_locs()["trainval"][:-1]), "train_loc": locs_column([0]),
        "val_loc": locs_column([1])})


def word_vectors(array: np.ndarray) -> Build:
    def build(ctx: Ctx) -> list[str]:
        directory = ctx.dataset(images=True)
        np.save(ctx.tmp / "vectors.npy", array)
        return [*RUN, "--data-root", str(directory.parent), "--set", f"data.word_vectors={ctx.tmp / 'vectors.npy'}"]
    return build


def resume_finished_run(ctx: Ctx) -> list[str]:
    return [*RUN, "--data-root", str(ctx.workdir / "data"), "--resume", ctx.run_id]


def synth_over_earlier(ctx: Ctx, read_only: bool = False, fsize: int | None = None) -> list[str]:
    """``data synth`` into a data root whose ``synth-tiny`` is an earlier (different) dataset, which must survive."""
    root = ctx.tmp / "data"
    write_tiny_dataset(root / "synth-tiny", images=True, image_size=8)
    if read_only:
        ctx.read_only(root, root / "synth-tiny")
    ctx.fsize = fsize
    return ["data", "synth", "--preset", "tiny", "--out", str(root)]


def synth_into_a_file(ctx: Ctx) -> list[str]:
    (ctx.tmp / "file").write_text("x")
    return ["data", "synth", "--preset", "tiny", "--out", str(ctx.tmp / "file")]


def check_corrupt_split_file(ctx: Ctx) -> list[str]:
    """``data check`` lists image problems (exit 1) but a broken split file is a user error like anywhere else."""
    (ctx.dataset() / "att_splits.mat").write_bytes(b"MATLAB 5.0")
    return ["data", "check", "--dataset", DATASET, "--data-root", str(ctx.tmp / "data")]


def embed_into_read_only(ctx: Ctx) -> list[str]:
    directory = ctx.dataset()
    vectors = ctx.tmp / "glove.txt"
    words = "head colour red blue body shape round tail size long wing pattern striped".split()
    vectors.write_text("".join(f"{w} {i} 1.0 0.5\n" for i, w in enumerate(words)))
    ctx.read_only(directory)
    return ["data", "embed", "--dataset", DATASET, "--data-root", str(directory.parent), "--vectors", str(vectors)]


def xlsa17_zip(ctx: Ctx) -> Path:
    """A small xlsa17.zip (xlsa17/data/CUB/...) built in the case folder."""
    build = ctx.tmp / "build"
    write_tiny_dataset(build / "xlsa17" / "data" / DATASET, images=False)
    archive = ctx.tmp / "xlsa17.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(build.rglob("*")):
            handle.write(path, path.relative_to(build))
    shutil.rmtree(build)
    return archive


def fetch_into_read_only(ctx: Ctx) -> list[str]:
    archive = xlsa17_zip(ctx)
    root = ctx.tmp / "data"
    root.mkdir()
    ctx.read_only(root)
    return ["data", "fetch", "xlsa17", "--data-root", str(root), "--url", str(archive), "--no-check"]


def fetch_corrupt_archive(ctx: Ctx) -> list[str]:
    archive = ctx.tmp / "xlsa17.zip"
    archive.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    return ["data", "fetch", "xlsa17", "--data-root", str(ctx.tmp / "data"), "--url", str(archive)]


def run_on_full_disk(ctx: Ctx) -> list[str]:
    ctx.fsize = 16_000  # the run folder's small files fit; the checkpoint does not
    return good_run()(ctx)


def table_to_full_disk(ctx: Ctx) -> list[str]:
    ctx.fsize = 64
    return ["table", "main", "--format", "markdown", "--out", str(ctx.tmp / "main.md")]


def with_port(*args: str) -> Build:
    return lambda ctx: [a.format(port=ctx.port, tmp=ctx.tmp) for a in args]


# --------------------------------------------------------------------------- the table
HUGE = "9" * 400
CASES = [
    # ---- CLI: options and names
    pytest.param(argv("run", "--bogus-option"), r"No such option: --bogus-option", id="cli-unknown-option"),
    pytest.param(argv("run", "--seed", "abc", "--dry-run"), r"Invalid value for '--seed'", id="cli-ill-typed-option"),
    pytest.param(argv("nosuchcommand"), r"No such command 'nosuchcommand'", id="cli-unknown-command"),
    pytest.param(dry("--dataset", "IMAGENET"), r"unknown dataset 'IMAGENET'; valid choices: synth, CUB, AWA2, SUN",
                 id="unknown-dataset"),
    pytest.param(dry("--model", "resnet"), r"unknown model 'resnet'; valid choices: apn, svip, transzero, vit",
                 id="unknown-model"),
    pytest.param(dry("--ablate", "no_jss"), r"unknown ablation 'no_jss'; valid choices: .* Did you mean 'no_js'\?",
                 id="unknown-ablation"),
    pytest.param(dry("--ablate", "no_js", "--ablate", "baseline"), r"cannot be combined", id="ablations-conflict"),
    pytest.param(dry("--model", "vit", "--ablate", "no_js"), r"ablation 'no_js' applies to model\(s\) svip",
                 id="ablation-for-another-model"),
    pytest.param(dry("--preset", "huge"), r"unknown preset 'huge'; valid choices: paper, paper-zsl, quick, tiny", id="unknown-preset"),
    pytest.param(dry("--device", "tpu"), r"train\.device 'tpu' is not one of auto, cpu, cuda, cuda:N", id="unknown-device"),
    # ---- config: --set keys and values
    pytest.param(dry("--set", "train.lrr=1"), r"unknown config key 'train\.lrr'; valid keys in 'train': epochs, ",
                 id="set-unknown-key"),
    pytest.param(dry("--set", "trian.lr=1"), r"unknown config section 'trian' in 'trian\.lr'; valid sections: data, ",
                 id="set-unknown-section"),
    pytest.param(dry("--set", "lr"), r"override 'lr' is not of the form key=value", id="set-without-equals"),
    pytest.param(dry("--set", "train.epochs=abc"), r"train\.epochs='abc' must be an integer", id="set-int-ill-typed"),
    pytest.param(dry("--set", "train.epochs=2.5"), r"train\.epochs=2\.5 must be an integer", id="set-int-fraction"),
    pytest.param(dry("--set", "train.lr=fast"), r"train\.lr='fast' must be a number", id="set-float-ill-typed"),
    pytest.param(dry("--set", "train.drop_last=maybe"), r"train\.drop_last='maybe' must be true or false",
                 id="set-bool-ill-typed"),
    pytest.param(dry("--set", "eval.gamma_policy=best"), r"eval\.gamma_policy='best' is not valid; valid choices: "
                 r"none, fixed, val, oracle", id="set-unknown-choice"),
    pytest.param(dry("--set", "train.betas=[0.9]"), r"train\.betas=\[0\.9\] must be a list of 2 values",
                 id="set-list-length"),
    pytest.param(dry("--set", "train.lr=inf"), r"train\.lr='inf' must be a finite number", id="set-infinite"),
    pytest.param(dry("--set", f"train.epochs={HUGE}"), r"train\.epochs=9{50,}… is out of range", id="set-int-overflow"),
    pytest.param(dry("--set", f"train.lr={HUGE}"), r"train\.lr=9{50,}… must be a finite number", id="set-float-overflow"),
    pytest.param(dry("--set", "train.seed=99999999999999999999"), r"train\.seed=9+ is out of range",
                 id="set-int-beyond-64-bit"),
    pytest.param(dry("--set", "train.betas=" + "[" * 3000 + "]" * 3000), r"train\.betas='\[{20,}… must be a list of 2 values",
                 id="set-nested-too-deeply"),
    pytest.param(dry("--set", "train.epochs=0"), r"train\.epochs must be at least 1, got 0", id="set-zero-epochs"),
    pytest.param(dry("--set", "train.warmup_epochs=50"), r"train\.warmup_epochs must be between 0 and train\.epochs",
                 id="set-warmup-beyond-epochs"),
    pytest.param(dry("--set", "train.lr=-1e-4"), r"train\.lr must be non-negative, got -0\.0001", id="set-negative-lr"),
    pytest.param(dry("--set", "train.weight_decay=-1"), r"train\.weight_decay must be non-negative",
                 id="set-negative-weight-decay"),
    pytest.param(dry("--set", "train.betas=[1.5,0.9]"), r"train\.betas must both lie in \[0, 1\), got \[1\.5, 0\.9\]",
                 id="set-beta-out-of-range"),
    pytest.param(dry("--set", "train.threads=-1"), r"train\.threads must be non-negative", id="set-negative-threads"),
    pytest.param(dry("--set", "data.num_workers=-2"), r"data\.num_workers must be -1 \(one per CPU core\), 0 \(none\)",
                 id="set-negative-workers"),
    pytest.param(dry("--set", "data.image_size=-5"), r"data\.image_size must be non-negative", id="set-negative-image-size"),
    pytest.param(dry("--set", "model.img_size=40"), r"40/8 gives an odd patch grid", id="set-odd-patch-grid"),
    pytest.param(dry("--set", "model.img_size=100000000"), r"model\.img_size must be at most 4096 pixels, got 100000000",
                 id="set-huge-image-size"),
    pytest.param(dry("--set", "model.depth=-1"), r"model\.depth must be 0 \(the backbone's own value\) or positive",
                 id="set-negative-depth"),
    pytest.param(dry("--set", "model.keep=0"), r"model\.keep must be at least 1, got 0", id="set-zero-keep"),
    pytest.param(dry("--set", "model.js_weight=-1"), r"model\.js_weight is a loss weight and must be non-negative",
                 id="set-negative-loss-weight"),
    pytest.param(dry("--set", "model.consistency_temperature=0"), r"model\.consistency_temperature must be positive",
                 id="set-zero-temperature"),
    pytest.param(dry("--set", "model.logit_scale=0"), r"model\.logit_scale \(temperature σ\) must be positive",
                 id="set-zero-logit-scale"),
    # ---- config files
    pytest.param(lambda ctx: ["run", "--config", str(ctx.tmp / "missing.yaml"), "--dry-run"],
                 r"config file '.*missing\.yaml' does not exist", id="config-missing"),
    pytest.param(config_file("train: [1, 2\n"), r"config file '.*' is not valid YAML \(\w+Error\)", id="config-bad-yaml"),
    pytest.param(config_file(b"\xff\xfe\x00train: 1\n"), r"is not valid YAML \(UnicodeDecodeError\)",
                 id="config-not-utf8"),
    pytest.param(config_file("- 1\n- 2\n"), r"a config file must hold a mapping of sections", id="config-a-list"),
    pytest.param(config_file("train: " + "[" * 3000 + "]" * 3000 + "\n"), r"is not valid YAML \(RecursionError\)",
                 id="config-nested-too-deeply"),
    pytest.param(config_file("model: 3\n"), r"config section 'model' must be a mapping of keys to values, got 3",
                 id="config-model-not-a-mapping"),
    pytest.param(config_file("model: {name: [1]}\n"), r"unknown model \[1\]; valid choices", id="config-model-name-a-list"),
    pytest.param(config_file("train: {epochz: 3}\n"), r"unknown config key 'train\.epochz'", id="config-unknown-key"),
    pytest.param(config_file("train: {epochs: many}\n"), r"train\.epochs='many' must be an integer",
                 id="config-ill-typed-value"),
    # ---- run options that name paths or runs
    pytest.param(lambda ctx: [*RUN, "--json", str(ctx.tmp / "absent" / "x.json")],
                 r"--json .*absent/x\.json: folder .*absent does not exist", id="json-folder-missing"),
    pytest.param(argv(*RUN, "--resume", "nope"), r"no run 'nope' under runs/ to resume", id="resume-unknown-run"),
    pytest.param(resume_finished_run, r"run [0-9a-f]{32} already finished; its results are in runs/",
                 id="resume-finished-run"),
    # ---- data root and split files (data info loads and validates them)
    pytest.param(lambda ctx: ["data", "info", "--dataset", DATASET, "--data-root", str(ctx.tmp / "absent")],
                 r"data root '.*absent' does not exist; get the xlsa17 split files", id="data-root-missing"),
    pytest.param(lambda ctx: ["data", "info", "--dataset", "AWA2", "--data-root", str(ctx.dataset().parent)],
                 r"no dataset directory 'AWA2' under '.*' \(it holds: CUB\); get the xlsa17", id="dataset-folder-missing"),
    pytest.param(check_corrupt_split_file, r"att_splits\.mat is unreadable or corrupt", id="data-check-corrupt-split-file"),
    pytest.param(info_after(remove("att_splits.mat")), r"att_splits\.mat is missing; get the xlsa17 split files",
                 id="att-splits-missing"),
    pytest.param(info_after(remove("res101.mat")), r"has neither res101\.mat nor res101_meta\.npz",
                 id="image-list-missing"),
    pytest.param(info_after(write_bytes("att_splits.mat", np.random.default_rng(0).bytes(400))),
                 r"att_splits\.mat is unreadable or corrupt \(.*\); re-download it", id="att-splits-random-bytes"),
    pytest.param(info_after(write_bytes("att_splits.mat", lambda data: data[: len(data) // 2])),
                 r"att_splits\.mat is unreadable or corrupt", id="att-splits-truncated"),
    pytest.param(info_after(write_bytes("att_splits.mat", b"")), r"att_splits\.mat is unreadable or corrupt",
                 id="att-splits-empty"),
    pytest.param(info_after(write_bytes("res101.mat", lambda data: data[:-40])), r"res101\.mat is unreadable or corrupt",
                 id="res101-truncated"),
    pytest.param(info_after(damage_mat_byte("original_att", data_type_byte, 0x41)),
                 r"att_splits\.mat is unreadable or corrupt \(element of unknown type 16649\); re-download it",
                 id="att-splits-damaged-type-tag"),  # crashed scipy's reader (SIGSEGV) before check_mat_elements
    pytest.param(info_after(damage_mat_byte("original_att", complex_flag_byte, 0x08)),
                 r"att_splits\.mat is unreadable or corrupt \(a matrix of class 6 with dims \(5, 6\) holds 1 data "
                 r"elements and 0 nested matrices, not 2 and 0\)", id="att-splits-damaged-complex-flag"),
    pytest.param(info_after(matlab_v73), r"att_splits\.mat is a MATLAB v7\.3 \(HDF5\) file", id="att-splits-matlab-v73"),
    pytest.param(info_after(edit_mat("att_splits.mat", test_unseen_loc=None)), r"lacks the field 'test_unseen_loc'",
                 id="field-missing"),
    pytest.param(info_after(edit_mat("res101.mat", labels=None)), r"res101\.mat lacks the field 'labels'",
                 id="labels-missing"),
    pytest.param(info_after(edit_mat("att_splits.mat", att=np.zeros((5, 6, 2)))),
                 r"att must be a numeric \[attributes, classes\] matrix, got float64 of shape \(5, 6, 2\)",
                 id="att-three-dimensional"),
    pytest.param(info_after(edit_mat("att_splits.mat", att=np.array(["red", "blue"]))),
                 r"att must be a numeric \[attributes, classes\] matrix, got <U4", id="att-text"),
    pytest.param(info_after(edit_mat("att_splits.mat", allclasses_names=lambda m: m["allclasses_names"][:5])),
                 r"att has 6 class columns but allclasses_names lists 5 classes", id="att-vs-class-names"),
    pytest.param(info_after(edit_mat("att_splits.mat", original_att=lambda m: m["original_att"][:, :5])),
                 r"original_att has shape \(5, 5\) but att has \(5, 6\)", id="original-att-shape"),
    pytest.param(info_after(edit_mat("res101.mat", image_files=lambda m: m["image_files"][:29])),
                 r"res101\.mat: 30 labels but 29 image_files", id="labels-vs-image-files"),
    pytest.param(info_after(edit_mat("att_splits.mat", test_unseen_loc=locs_column([20, 30]))),
                 r"split 'test_unseen' has image index 31 \(1-based\) out of range for the 30 images",
                 id="loc-beyond-images"),
    pytest.param(info_after(edit_mat("att_splits.mat", trainval_loc=locs_column([-1, 0, 1]))),
                 r"split 'trainval' has image index 0 \(1-based\) out of range", id="loc-zero"),
    pytest.param(info_after(edit_mat("att_splits.mat", trainval_loc=np.array([[1.5], [2.0]]))),
                 r"trainval_loc holds non-integer indices", id="loc-fraction"),
    pytest.param(info_after(edit_mat("att_splits.mat", trainval_loc=np.array(["a", "b"]))),
                 r"trainval_loc must hold integer image indices, got <U1", id="loc-text"),
    pytest.param(info_after(edit_mat("res101.mat", labels=labels_column(lambda lab: lab.__setitem__(-1, 9)))),
                 r"labels span 0\.\.8 \(0-based\) but there are 6 classes", id="label-beyond-classes"),
    pytest.param(info_after(edit_mat("res101.mat", labels=labels_column(lambda lab: lab.__setitem__(0, 0)))),
                 r"labels span -1\.\.5 \(0-based\) but there are 6 classes", id="label-zero"),
    pytest.param(info_after(edit_mat("res101.mat", labels=labels_column(lambda lab: lab.__setitem__(3, 1.5)))),
                 r"res101\.mat: labels holds non-integer class ids", id="label-fraction"),
    pytest.param(info_after(edit_mat("att_splits.mat", test_seen_loc=locs_column(
        np.concatenate([tiny_locs()["test_seen"], tiny_locs()["trainval"][:2]])))),
                 r"splits 'trainval' and 'test_seen' overlap in 2 images \(e\.g\. index 1, 1-based\)",
                 id="splits-overlap-train-test"),
    pytest.param(info_after(edit_mat("att_splits.mat", test_unseen_loc=locs_column(
        np.concatenate([tiny_locs()["test_unseen"], tiny_locs()["test_seen"][:1]])))),
                 r"splits 'test_seen' and 'test_unseen' overlap in 1 images", id="splits-overlap-seen-unseen"),
    pytest.param(info_after(edit_mat("att_splits.mat",
                                     test_seen_loc=locs_column(np.setdiff1d(tiny_locs()["test_seen"], [4])),
                                     test_unseen_loc=locs_column(np.append(tiny_locs()["test_unseen"], 4)))),
                 r"class 'c0' \(and 0 more\) has images in both trainval and test_unseen", id="class-seen-and-unseen"),
    pytest.param(info_after(edit_mat("att_splits.mat", trainval_loc=locs_column(
        tiny_locs()["trainval"][tiny_locs()["trainval"] // PER_CLASS != 3]))),
                 r"seen class 'c3' \(and 0 more\) has test_seen images but no trainval image", id="seen-class-untrained"),
    pytest.param(info_after(edit_mat("att_splits.mat", test_unseen_loc=np.zeros((0, 1)))),
                 r"split 'test_unseen' is empty, so there are no unseen classes", id="split-empty"),
    pytest.param(info_after(edit_mat("res101.mat", labels=labels_column(lambda lab: lab.__setitem__(lab == 6, 5)))),
                 r"class 'c5' \(and 0 more\) has no image in trainval or test_unseen", id="class-without-images"),
    pytest.param(info_after(edit_mat("att_splits.mat", original_att=set_entry("original_att", (1, 2), np.nan))),
                 r"original_att holds 1 NaN/inf values", id="attribute-nan"),
    pytest.param(info_after(edit_mat("att_splits.mat", att=set_entry("att", (0, 0), np.inf))),
                 r": att holds 1 NaN/inf values", id="attribute-inf"),
    pytest.param(info_after(edit_mat("att_splits.mat", original_att=zero_class)),
                 r"class 'c2' \(and 0 more\) has an all-zero attribute vector in original_att", id="attribute-row-zero"),
    pytest.param(info_after(write_bytes("attributes.txt", b"1 red\n2 blue\n")),
                 r"attributes\.txt names 2 attributes but att_splits\.mat has 5", id="attribute-names-count"),
    pytest.param(info_after(write_bytes("attribute_groups.json", b"{\"groups\": ")),
                 r"attribute_groups\.json is not valid JSON", id="attribute-groups-bad-json"),
    pytest.param(info_after(write_bytes("attribute_groups.json", json.dumps({"groups": {"g": [0, 7]}}).encode())),
                 r"group 'g' has indices outside 0\.\.4", id="attribute-groups-out-of-range"),
    pytest.param(info_after(meta_npz()), r"res101_meta\.npz lacks the field 'labels'",
                 id="meta-npz-empty"),
    pytest.param(info_after(lambda d: ((d / "res101.mat").unlink(), (d / "res101_meta.npz").write_bytes(b"PK\x03\x04junk"))),
                 r"res101_meta\.npz is unreadable or corrupt \(BadZipFile", id="meta-npz-corrupt"),
    pytest.param(info_after(meta_npz(labels=np.repeat(np.arange(6), PER_CLASS),
                                     image_files=np.array([f"images/{i}.png" for i in range(30)]),
                                     trainval_loc=np.array(["x"]))),
                 r"res101_meta\.npz: trainval_loc must hold integer image indices", id="meta-npz-locs-text"),
    pytest.param(info_after(sent_splits_of_another_split),
                 r"sent_splits\.mat: its trainval_loc differs from att_splits\.mat", id="sent-splits-other-split"),
    pytest.param(info_after(edit_mat("res101.mat", image_files=lambda m: np.array(
        [["/BS/xian/elsewhere/x.jpg"]] * 30, dtype=object))),
                 r"image path '/BS/xian/elsewhere/x\.jpg' does not contain CUB's anchor 'CUB_200_2011/images/'",
                 id="image-path-without-anchor"),
    # ---- word vectors
    pytest.param(good_run("--set", "data.word_vectors={tmp}/absent.npy"), r"word-vector file .*absent\.npy does not exist",
                 id="word-vectors-missing"),
    pytest.param(word_vectors(np.zeros((3, 4))), r"have shape \(3, 4\) but CUB has 5 attributes", id="word-vectors-shape"),
    pytest.param(word_vectors(np.full((5, 4), np.nan)), r"word vectors from '.*' must be finite numbers",
                 id="word-vectors-nan"),
    pytest.param(good_run("--set", "data.word_vectors=bogus"), r"unknown word-vector source 'bogus'",
                 id="word-vectors-unknown"),
    # ---- images (the run decodes them)
    pytest.param(run_after(remove("images/c0/0.png")), r"1 of 30 images of CUB are missing under .* \(e\.g\. images/c0/0\.png\);"
                 r" fetch them with `zslbench data fetch CUB", id="image-missing"),  # checked before any run exists
    pytest.param(run_after(write_bytes("images/c0/0.png", lambda data: data[: len(data) // 2])),
                 r"image .*images/c0/0\.png is corrupt or unreadable \(OSError: image file is truncated",
                 id="image-truncated"),
    pytest.param(run_after(write_bytes("images/c1/5.png", b"\x89PNG garbage")),
                 r"image .*images/c1/5\.png is corrupt or unreadable \(UnidentifiedImageError", id="image-corrupt"),
    pytest.param(run_after(write_bytes("images/c0/0.png", b"")), r"image .*images/c0/0\.png is corrupt or unreadable",
                 id="image-empty-file"),
    pytest.param(run_after(replace_with_folder("images/c0/0.png")), r"image .*images/c0/0\.png is corrupt or unreadable",
                 id="image-is-a-folder"),
    pytest.param(run_after(image_array("images/c0/0.png", (np.arange(256).reshape(16, 16) * 250).astype(np.uint16))),
                 r"image .*images/c0/0\.png has pixel mode I;16 \(more than 8 bits per channel\).*save it as 8-bit",
                 id="image-mode-16-bit"),
    pytest.param(run_after(image_array("images/c0/0.png", np.random.default_rng(0).random((16, 16), np.float32), "TIFF")),
                 r"image .*images/c0/0\.png has pixel mode F", id="image-mode-float"),
    pytest.param(run_after(write_bytes("images/c2/10.png", b"junk"), "--set", "data.cache_images=false"),
                 r"image .*images/c2/10\.png is corrupt or unreadable", id="image-corrupt-streamed"),
    pytest.param(run_after(write_bytes("images/c2/10.png", b"junk"), "--set", "data.cache_images=false", "--set",
                           "data.num_workers=2"),
                 r"^error: image \S*images/c2/10\.png is corrupt or unreadable", id="image-corrupt-in-a-loader-worker"),
    pytest.param(good_run("--set", "data.image_root={tmp}/absent"), r"30 of 30 images of CUB are missing under .*absent "
                 r"\(e\.g\. images/c\d/\d+\.png\)", id="image-root-missing"),
    # ---- γ / selection policy val without a validation split
    pytest.param(run_after(edit_mat("att_splits.mat", train_loc=None, val_loc=None), "--set", "eval.gamma_policy=val"),
                 r"gamma policy / selection 'val', a sweep's objective\) needs train_loc and val_loc, which CUB lacks",
                 id="gamma-val-no-split"),
    pytest.param(run_after(edit_mat("att_splits.mat", train_loc=None, val_loc=None), "--set", "eval.selection=val"),
                 r"gamma policy / selection 'val', a sweep's objective\) needs train_loc and val_loc",
                 id="selection-val-no-split"),
    pytest.param(argv("table", "main", "--gamma-policy", "val"),
                 r"--gamma-policy val needs validation scores or a validation γ, which run\(s\) [0-9a-f]{32} lack",
                 id="table-gamma-val-no-val-scores"),
    # ---- results: experiments and table options
    pytest.param(argv("table", "main", "--experiment", "nope"),
                 r"unknown experiment 'nope' in sqlite:///.*mlflow\.db; existing experiments: .*empty", id="table-unknown-experiment"),
    pytest.param(argv("table", "main", "--experiment", "empty"), r"no finished runs in experiment 'empty'",
                 id="table-empty-experiment"),
    pytest.param(argv("table", "sensitivity", "temperature"), r"experiment 'zslbench' has no sweep of temperature: a "
                 r"sensitivity table shows swept parameters only", id="table-sensitivity-without-sweep"),
    pytest.param(argv("table", "main", "--format", "docx"), r"unknown format 'docx'; valid choices: csv, latex, markdown",
                 id="table-unknown-format"),
    pytest.param(argv("table", "sensitivity", "bogus"), r"unknown sensitivity parameter 'bogus'", id="table-unknown-param"),
    pytest.param(lambda ctx: ["plot", "sensitivity", "temperature", "--out", str(ctx.tmp / "plot.gif")],
                 r"cannot write a plot to '.*plot\.gif': use a \.png or \.pdf", id="plot-wrong-extension"),
    # ---- tracking store URLs
    pytest.param(good_run("--set", "track.enabled=true", "--tracking-uri", "http://127.0.0.1:{port}"),
                 r"MLflow tracking server http://127\.0\.0\.1:\d+ is unreachable \(Connection refused\)",
                 id="run-tracking-unreachable"),
    pytest.param(good_run("--set", "track.enabled=true", "--tracking-uri", "bogus://x"),
                 r"MLflow tracking store bogus://x could not be used", id="run-tracking-malformed"),
    pytest.param(good_run("--set", "track.enabled=true", "--tracking-uri", "sqlite:///{tmp}/absent/mlflow.db"),
                 r"MLflow store sqlite:///.*absent/mlflow\.db cannot be created: directory '.*absent' does not exist",
                 id="run-tracking-sqlite-folder-missing"),
    pytest.param(good_run("--set", "track.enabled=true", "--tracking-uri", "postgresql://u:pw@127.0.0.1:{port}/db"),
                 r"MLflow tracking (store|server) postgresql://u:\*\*\*@127\.0\.0\.1:\d+/db (could not be used|is "
                 r"unreachable) \((?!FileNotFoundError)", id="run-tracking-postgres-unreachable"),
    pytest.param(with_port("table", "main", "--tracking-uri", "http://127.0.0.1:{port}"),
                 r"MLflow tracking server http://127\.0\.0\.1:\d+ is unreachable", id="table-tracking-unreachable"),
    pytest.param(argv("table", "main", "--tracking-uri", "bogus://x"), r"tracking store bogus://x could not be used",
                 id="table-tracking-malformed"),
    # ---- sweeps: names and Optuna storage URLs
    pytest.param(argv("sweep", "bogus"), r"unknown search space 'bogus'; valid choices: all, ", id="sweep-unknown-space"),
    pytest.param(argv("sweep", "temperature", "--metric", "foo"), r"unknown metric 'foo'", id="sweep-unknown-metric"),
    pytest.param(argv("sweep", "temperature", "--trials", "0"), r"--trials must be at least 1, got 0", id="sweep-zero-trials"),
    pytest.param(argv("sweep", "temperature", "--storage", "bogus://x"),
                 r"--storage 'bogus://x' is not a storage URL Optuna can use", id="sweep-storage-malformed"),
    pytest.param(argv("sweep", "temperature", "--storage", "sqlite://optuna.db"),
                 r"a sqlite URL has three slashes", id="sweep-storage-sqlite-two-slashes"),
    pytest.param(with_port("sweep", "temperature", "--preset", "tiny", "--storage",
                           "postgresql+psycopg://u:pw@127.0.0.1:{port}/optuna"),
                 r"cannot open the Optuna storage postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:\d+/optuna "
                 r"\(OperationalError.*Connection refused", id="sweep-storage-unreachable"),
    pytest.param(with_port("sweep", "temperature", "--preset", "tiny", "--storage", "journal:{tmp}/absent/journal.log"),
                 r"journal storage journal:.*absent/journal\.log: folder '.*absent' does not exist",
                 id="sweep-storage-journal-folder-missing"),
    # ---- data commands
    pytest.param(lambda ctx: ["data", "synth", "--preset", "huge", "--out", str(ctx.tmp)],
                 r"unknown synth preset 'huge'; valid choices: default, paper, tiny", id="synth-unknown-preset"),
    pytest.param(synth_into_a_file, r"cannot create the data root '.*file' \(File exists\)", id="synth-out-is-a-file"),
    pytest.param(lambda ctx: ["data", "fetch", "bogus", "--data-root", str(ctx.tmp)],
                 r"unknown archive 'bogus'; valid choices: AWA2, CUB, SUN, xlsa17", id="fetch-unknown-archive"),
    pytest.param(lambda ctx: ["data", "fetch", "xlsa17", "--data-root", str(ctx.tmp / "data"), "--url",
                              f"file://{ctx.tmp}/absent.zip"],
                 r"absent\.zip does not exist; pass --url with the path", id="fetch-archive-missing"),
    pytest.param(fetch_corrupt_archive, r"xlsa17\.zip is neither a zip nor a tar archive \(corrupt or truncated\)",
                 id="fetch-archive-corrupt"),
    pytest.param(lambda ctx: ["data", "embed", "--dataset", DATASET, "--data-root", str(ctx.dataset().parent),
                              "--vectors", str(ctx.tmp / "absent.bin")],
                 r"word-vector file '.*absent\.bin' does not exist", id="embed-vectors-missing"),
    # ---- read-only data root / dataset directory
    pytest.param(lambda ctx: synth_over_earlier(ctx, read_only=True),
                 r"writing the synthetic benchmark under '.*data' failed \((Permission denied|Operation not permitted)\)",
                 id="synth-read-only-root"),
    pytest.param(embed_into_read_only, r"(cannot write|not writable|read-only).*attribute_w2v\.npy|"
                 r"attribute_w2v\.npy.*(Permission denied|Operation not permitted)", id="embed-read-only-dataset"),
    pytest.param(fetch_into_read_only, r"(Permission denied|Operation not permitted|not writable)",
                 id="fetch-read-only-root"),
    # ---- full disk
    pytest.param(lambda ctx: synth_over_earlier(ctx, fsize=2_000),
                 r"writing the synthetic benchmark under '.*data' failed \(File too large\); free disk space",
                 id="synth-disk-full"),
    pytest.param(run_on_full_disk, r"runs/[0-9a-f]{32}.*(File too large|No space|disk)", id="run-disk-full"),
    pytest.param(table_to_full_disk, r"main\.md.*(File too large|No space|disk)", id="table-out-disk-full"),
]


@pytest.mark.parametrize("build, expected", CASES)
def test_bad_input_exits_2_with_one_clear_line(build: Build, expected: str, earlier: tuple[Path, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    workdir, run_id = earlier
    _clean_environment(monkeypatch)
    # MLflow retries a database it cannot reach for ~100 s (10 attempts, doubling sleeps); one attempt
    # takes the same code path and keeps an unreachable-database case fast.
    import mlflow.store.db.utils

    monkeypatch.setattr(mlflow.store.db.utils, "MAX_RETRY_COUNT", 1)
    monkeypatch.chdir(workdir)
    ctx = Ctx(tmp=tmp_path / "case", workdir=workdir, run_id=run_id, port=closed_port())
    ctx.tmp.mkdir()
    try:
        args = build(ctx)
        before_earlier, before_case = snapshot(workdir), snapshot(ctx.tmp)
        capsys.readouterr()
        with file_size_limit(ctx.fsize) if ctx.fsize else contextlib.nullcontext():
            code, out, err = invoke(args, capsys)
        after_earlier, after_case = snapshot(workdir), snapshot(ctx.tmp)
    finally:
        for undo in reversed(ctx.cleanups):
            undo()

    shown = f"exit {code}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert "Traceback" not in out + err, shown
    assert code == 2, shown
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert re.search(expected, lines[0]), f"{expected!r} not in {lines[0]!r}"
    changed = [p for p, digest in before_earlier.items() if after_earlier.get(p) != digest]
    assert not changed, f"earlier results changed or removed: {changed}"
    left = sorted(p for p in before_case.keys() | after_case.keys() if before_case.get(p) != after_case.get(p))
    assert not left, f"files in the case's folder written, changed or removed: {left[:5]}"


def test_the_table_is_large_and_distinct() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) >= 40
