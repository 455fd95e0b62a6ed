"""Output paths a run cannot use are found before anything is created: one line, exit code 2, and no data
generated, no MLflow run or experiment, no run folder.

Each case is what a user can do by accident: start a run in a read-only folder while the MLflow store lives
elsewhere, point ``--json`` at a read-only folder, keep data under a path that is not UTF-8, or name an
experiment so long that no folder can carry its name. Read-only folders are ``chmod`` for a normal user and
``chattr +i`` for root (whom permissions do not stop).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from test_bad_inputs import invoke

RUN = ["run", "--preset", "tiny", "--epochs", "1", "--set", "train.threads=1"]


@pytest.fixture
def read_only():
    """``read_only(folder)``: make it unwritable for this process, root included; undone afterwards."""
    undo: list[Callable[[], None]] = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            undo.append(lambda: folder.chmod(0o755))
        else:
            done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True) if shutil.which("chattr") else None
            if done is None or done.returncode != 0:
                pytest.skip("running as root and `chattr +i` is unavailable: no way to make a folder read-only")
            undo.append(lambda: subprocess.run(["chattr", "-i", str(folder)], check=True))
        try:
            (folder / ".probe").write_text("x")
        except OSError:
            return
        (folder / ".probe").unlink()
        pytest.skip("the folder stays writable (a file system without permissions or immutable flag)")

    yield make
    for action in reversed(undo):
        action()


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder, a data root and an MLflow store (sqlite) elsewhere, in a clean environment."""
    for name in ("MLFLOW_TRACKING_URI", "ZSLBENCH_DATA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    for folder in ("work", "store"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


def store_args(place: Path, data_root: Path | None = None) -> list[str]:
    return ["--tracking-uri", f"sqlite:///{place / 'store' / 'mlflow.db'}", "--data-root",
            str(data_root or place / "data")]


def mlflow_runs(place: Path) -> int:
    """How many runs the store holds (0 when it was never created)."""
    database = place / "store" / "mlflow.db"
    if not database.exists():
        return 0
    with sqlite3.connect(database) as connection:
        try:
            return connection.execute("select count(*) from runs").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def assert_one_line_exit_2(code: int, out: str, err: str, expected: str) -> None:
    shown = f"exit {code}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert code == 2 and "Traceback" not in out + err, shown
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert __import__("re").search(expected, lines[0]), f"{expected!r} not in {lines[0]!r}"


def assert_nothing_created(place: Path) -> None:
    assert mlflow_runs(place) == 0, "an MLflow run was created"
    assert not (place / "data").exists(), "data was generated"
    assert not (place / "work" / "runs").exists(), "a run folder was created"


def test_a_read_only_working_folder_is_found_before_the_run_starts(place: Path, read_only, capsys) -> None:
    read_only(place / "work")
    code, out, err = invoke([*RUN, *store_args(place)], capsys)
    assert_one_line_exit_2(code, out, err, r"track\.output_dir \(where run folders go\) runs: cannot write into "
                                           r"\. \((Permission denied|Operation not permitted)\)")
    assert_nothing_created(place)


def test_json_into_a_read_only_folder_is_found_before_training(place: Path, read_only, capsys) -> None:
    (place / "out").mkdir()
    read_only(place / "out")
    started = time.monotonic()
    code, out, err = invoke([*RUN, *store_args(place), "--json", str(place / "out" / "r.json")], capsys)
    assert_one_line_exit_2(code, out, err, r"--json .*out/r\.json: cannot write into .*out \((Permission denied|"
                                           r"Operation not permitted)\)")
    assert_nothing_created(place)
    assert time.monotonic() - started < 30  # no data generation, no training


def test_a_data_root_that_is_not_utf8_is_found_before_data_is_generated(place: Path, capsys) -> None:
    root = Path(os.fsdecode(bytes(place) + b"/caf\xe9-data"))
    code, out, err = invoke([*RUN, *store_args(place, root)], capsys)
    assert_one_line_exit_2(code, out, err, r"data\.root '.*/caf\\xe9-data' holds a byte that is not UTF-8 \(0xe9\)")
    assert_nothing_created(place) and not os.path.exists(root)


def test_an_experiment_name_no_folder_can_carry_is_found_before_the_experiment_exists(place: Path, capsys) -> None:
    code, out, err = invoke([*RUN, *store_args(place), "--experiment", "x" * 400], capsys)
    assert_one_line_exit_2(code, out, err, r"track\.experiment is 400 characters long: its artifacts would go to a "
                                           r"folder named after it .*choose a shorter --experiment")
    assert_nothing_created(place)
    if (place / "store" / "mlflow.db").exists():
        with sqlite3.connect(place / "store" / "mlflow.db") as connection:
            names = [row[0] for row in connection.execute("select name from experiments")]
        assert "x" * 400 not in names


def test_an_experiment_name_beyond_mlflows_limit_is_one_line(place: Path, capsys) -> None:
    code, out, err = invoke([*RUN, "--tracking-uri", "http://127.0.0.1:9", "--data-root", str(place / "data"),
                             "--experiment", "y" * 501], capsys)
    assert_one_line_exit_2(code, out, err, r"track\.experiment is 501 characters long; MLflow takes at most 500")


@pytest.mark.parametrize("command", [["table", "main"], ["plot", "ausuc"], ["report"]])
def test_out_into_a_read_only_folder_is_found_before_any_run_is_read(place: Path, read_only, capsys,
                                                                    command: list[str]) -> None:
    (place / "out").mkdir()
    read_only(place / "out")
    target = place / "out" / ("report" if command == ["report"] else "result.png")
    # the store does not exist: reading it first would be a different error (no such experiment)
    code, out, err = invoke([*command, "--tracking-uri", f"sqlite:///{place / 'store' / 'mlflow.db'}", "--out",
                             str(target)], capsys)
    assert_one_line_exit_2(code, out, err, r"--out .*out.*: cannot write into .*out \((Permission denied|Operation "
                                           r"not permitted)\)")
    assert not (place / "store" / "mlflow.db").exists()
