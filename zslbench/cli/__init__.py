"""The ``zslbench`` command line (Typer).

Thin by design: each command parses its options, builds a request or config, and calls one function.
Command groups live in :mod:`.training`, :mod:`.jobs`, :mod:`.data`, :mod:`.results` and :mod:`.tracking`, on
the app of :mod:`.app`; this module is the entry point (user errors → one line, exit code 2; cluster jobs that
ended without results → one line, exit code 1).
Heavy libraries (torch, mlflow, optuna, polars, seaborn) are imported inside commands only,
so ``zslbench --help`` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from zslbench.cli import training, jobs, data, results, tracking  # noqa: F401,I001  (registration, in --help order)
from zslbench.cli.app import app
from zslbench.core.errors import JobsFailed, UserError


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors → one line on stderr, exit code 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    if not debug:  # MLflow's INFO lines (creating tables, migrations) are noise to a user; --debug shows them
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    try:
        code = app(args=argv, prog_name="zslbench", standalone_mode=False)  # returns typer.Exit's code in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as exc:
        if debug:
            raise
        _print_error(str(exc))
        sys.exit(2)
    except JobsFailed as exc:  # cluster jobs that ended without results: a failure, each job named with its log
        if debug:
            raise
        _print_error(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except typer.Exit as exc:  # raised by commands for non-zero exits
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # the parser's usage errors and the like
        if isinstance(exc, _parser_exception_classes()):
            sys.exit(_show_parser_error(exc))
        if isinstance(exc, _abort_classes()):
            _print_error("aborted")
            sys.exit(1)
        raise


def _parser_exception_classes() -> tuple[type[Exception], ...]:
    """The exceptions the command-line parser raises for bad usage.

    typer ≥ 0.24 bundles its own copy of click whose exceptions derive from ``typer.TyperException``,
    not from ``click.ClickException``; older typer raises click's own. Both are matched.
    """
    classes: list[type[Exception]] = []
    if isinstance(getattr(typer, "TyperException", None), type):
        classes.append(typer.TyperException)
    try:
        import click
    except ImportError:  # click is no dependency of the bundling typer versions
        pass
    else:
        classes.append(click.exceptions.ClickException)
    return tuple(classes)


def _abort_classes() -> tuple[type[BaseException], ...]:
    """Typer's and click's ``Abort`` (raised when a prompt is cancelled)."""
    classes: list[type[BaseException]] = [typer.Abort] if isinstance(getattr(typer, "Abort", None), type) else []
    try:
        import click
    except ImportError:
        pass
    else:
        classes.append(click.exceptions.Abort)
    return tuple(classes)


def _show_parser_error(exc: Exception) -> int:
    """Print a parser error as one line (with where to get help) and return its exit code (2 for usage)."""
    code = getattr(exc, "exit_code", 2)
    if type(exc).__name__ == "NoArgsIsHelpError":  # `zslbench` or `zslbench data` alone: show the help
        exc.show()  # type: ignore[attr-defined]
        return code
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    context = getattr(exc, "ctx", None)
    if context is not None:
        message = f"{message.rstrip('.')}; see '{context.command_path} --help'"
    _print_error(message)
    return code


def _print_error(message: str) -> None:
    first_line = " ".join(message.strip().split("\n"))
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        sys.stderr.write(f"error: {first_line}\n")
    else:
        sys.stderr.write(f"\x1b[31merror:\x1b[0m {first_line}\n")


if __name__ == "__main__":
    main()
