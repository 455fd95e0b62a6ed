"""Shared fixtures: the real class-level data in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The data root ../shared/data; tests using it are skipped when it is absent."""
    if not (SHARED_DATA / "CUB" / "att_splits.mat").is_file():
        pytest.skip("../shared/data is absent: real split-file tests skipped")
    return SHARED_DATA


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for tiny models: steadier on a shared CPU, and they gain nothing from more
    (use with ``pytestmark = pytest.mark.usefixtures("single_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fresh_result_warnings():
    """Each test is its own command: result warnings print once per command (results.frames.warn)."""
    import sys

    frames = sys.modules.get("zslbench.results.frames")
    if frames is not None:
        frames._WARNED.clear()
    yield
