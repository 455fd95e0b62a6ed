"""pytest plumbing of the benchmark suite: modes, the session recorder, the results file, the summary.

Modes
-----
* full (``make bench``): paper geometries, several interleaved rounds; figures go to
  ``benchmarks/results/latest.json`` — but only when the whole suite ran (``-k`` or a single file
  writes ``results/partial.json`` instead, so a partial run never replaces the full record).
* quick (``make bench-quick``: ``ZSLBENCH_BENCH_QUICK=1`` or ``--bench-quick``): tiny geometries and
  one or two rounds, to check the machinery; figures go to ``results/quick.json`` and are not judged.

``ZSLBENCH_BENCH_FULL=1`` additionally measures the TransZero peak RSS on a full CUB-sized feature
cache (≈ 8.8 GiB written to a temporary folder). ``ZSLBENCH_BENCH_THREADS`` sets the torch thread
count (default 1: on a shared machine, idle OpenMP threads spin and blur CPU times).

No figure is asserted: a benchmark that misses its target still passes; the verdict is in the JSON,
the summary table printed at the end, and ``benchmarks/RESULTS.md`` (``render_results.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench_results import RESULTS_DIR, Recorder, machine_info, summary_lines, write_json_atomic

BENCH_DIR = Path(__file__).resolve().parent
_RECORDER = pytest.StashKey[Recorder]()
_OUTPUT = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zslbench benchmarks")
    group.addoption("--bench-quick", action="store_true", default=False,
                    help="tiny geometries, 1-2 rounds, results to benchmarks/results/quick.json (also "
                         "ZSLBENCH_BENCH_QUICK=1)")


def is_quick(config: pytest.Config) -> bool:
    return bool(config.getoption("--bench-quick")) or os.environ.get("ZSLBENCH_BENCH_QUICK", "") not in ("", "0")


def bench_threads() -> int:
    return int(os.environ.get("ZSLBENCH_BENCH_THREADS", "1"))


def pytest_configure(config: pytest.Config) -> None:
    import torch

    threads = bench_threads()
    torch.set_num_threads(threads)
    recorder = Recorder(mode="quick" if is_quick(config) else "full")
    recorder.machine = machine_info(threads)
    config.stash[_RECORDER] = recorder


def pytest_collection_finish(session: pytest.Session) -> None:
    """Pick the results file: the full record only when every benchmark module is in the run."""
    config = session.config
    if is_quick(config):
        config.stash[_OUTPUT] = RESULTS_DIR / "quick.json"
        return
    modules = {Path(str(item.fspath)).name for item in session.items}
    all_modules = {path.name for path in BENCH_DIR.glob("test_bench_*.py")}
    deselected = bool(config.getoption("keyword") or config.getoption("markexpr"))
    complete = all_modules <= modules and not deselected
    config.stash[_OUTPUT] = RESULTS_DIR / ("latest.json" if complete else "partial.json")


@pytest.fixture(scope="session")
def recorder(pytestconfig: pytest.Config) -> Recorder:
    """The session's figure collector: ``recorder.record(name, value, **details)``."""
    return pytestconfig.stash[_RECORDER]


@pytest.fixture(scope="session")
def quick(pytestconfig: pytest.Config) -> bool:
    """True in quick mode (tiny geometries, few rounds)."""
    return is_quick(pytestconfig)


@pytest.fixture(scope="session")
def full_size() -> bool:
    """True when ZSLBENCH_BENCH_FULL=1 asks for the disk- and time-heavy full-size measurements."""
    return os.environ.get("ZSLBENCH_BENCH_FULL", "") not in ("", "0")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A data root for the synthetic benchmark, shared by every benchmark of the session (generated on
    first use by ``ensure_synth``, so each preset is generated once per session)."""
    return tmp_path_factory.mktemp("synth-data")


@pytest.fixture(autouse=True)
def _fixed_threads():
    """Every benchmark starts on the suite's thread count (engine runs may change it)."""
    import torch

    torch.set_num_threads(bench_threads())
    yield
    torch.set_num_threads(bench_threads())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    recorder = config.stash.get(_RECORDER, None)
    output = config.stash.get(_OUTPUT, None)
    if recorder is None or output is None or not recorder.values:
        return
    payload = recorder.payload()
    write_json_atomic(output, payload)
    config.stash[_PAYLOAD] = (output, payload)


_PAYLOAD = pytest.StashKey[tuple]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    written = config.stash.get(_PAYLOAD, None)
    if written is None:
        return
    output, payload = written
    terminalreporter.section("zslbench benchmark figures")
    for line in summary_lines(payload):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"written to {output.relative_to(BENCH_DIR.parent)}")
