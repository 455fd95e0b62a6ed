"""Checkpoints and result files are replaced atomically: a failed write never damages the old file."""

from __future__ import annotations

import pytest
import torch

from zslbench.core.files import atomic_write
from zslbench.engine.checkpoint import load_checkpoint, save_checkpoint
from zslbench.core.errors import UserError


class Marker:
    """An arbitrary class: weights-only loading must refuse to rebuild it."""


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot serialise")


def test_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})
    with pytest.raises(RuntimeError, match="cannot serialise"):
        save_checkpoint(path, {"epoch": 2, "bad": Unpicklable()})
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_truncated_checkpoint_is_a_clear_user_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="cannot be read .* damaged"):
        load_checkpoint(path)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoints_refuse_arbitrary_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": Marker()}, path)
    with pytest.raises(UserError, match="cannot be read"):
        load_checkpoint(path)


def test_atomic_text_replaces_whole_file(tmp_path):
    path = tmp_path / "final.json"
    atomic_write(path, "old")
    atomic_write(path, "new")
    assert path.read_text() == "new"


def test_an_atomic_write_to_a_pipe_or_device_writes_through_it_and_keeps_it(tmp_path):
    """(`--json /dev/null` once replaced the machine's /dev/null by a file; a named pipe stands in for it here.)"""
    import os
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    import threading

    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    atomic_write(fifo, "through the pipe")
    reader.join(timeout=10)
    assert received == ["through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
