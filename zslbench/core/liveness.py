"""Is a process still alive? Used to clean up after builders and runs whose process died.

A process is identified by host, pid and the kernel's start time of that pid, so a pid the kernel
reused for another process is not mistaken for the original one.

>>> import os
>>> is_alive(os.getpid(), process_start(os.getpid()))
True
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot; "" where /proc is absent), so a
    reused pid is not mistaken for the original process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of stat(5), counted after the command name


def this_process() -> tuple[str, int, str]:
    """(host, pid, start time) of the calling process."""
    return socket.gethostname(), os.getpid(), process_start(os.getpid())


def is_alive(pid: int, started: str = "") -> bool:
    """Whether process ``pid`` runs (and, given its ``started`` time, is still that same process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return not started or process_start(pid) in ("", started)
