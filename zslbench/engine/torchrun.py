"""``python -m zslbench.engine.torchrun ARGS``: ``torchrun`` (``torch.distributed.run``) for ``zslbench run --nproc N``.

The same launcher with the same arguments; only a failed job ends differently. Each process has
already said what went wrong (one line, e.g. a non-finite loss or a missing file), so the launcher
adds no traceback of its own and exits with the first failed process's code (2 for a user error;
128 + n for a process killed by signal n) instead of 1.
"""

from __future__ import annotations

import sys


def exit_code(code: int) -> int:
    """A process's exit status as a shell reports it (a signal n as 128 + n).

    >>> exit_code(2), exit_code(-9), exit_code(0)
    (2, 137, 1)
    """
    if code < 0:
        return 128 - code
    return code or 1  # a failure reported with status 0 is still a failure


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    try:
        run(parse_args(sys.argv[1:] if argv is None else argv))
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        return exit_code(int(failure.exitcode))
    return 0


if __name__ == "__main__":
    sys.exit(main())
