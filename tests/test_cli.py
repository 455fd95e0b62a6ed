"""CLI surface: help is fast and light, errors are one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from zslbench.cli import main


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_help_imports_neither_torch_nor_mlflow():
    code = ("import sys; sys.argv=['zslbench','--help']\n"
            "from zslbench.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'mlflow', 'optuna', 'polars', 'timm', 'seaborn') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "run" in out and "data" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--ablate", "no_jss", "--dry-run"], "unknown ablation 'no_jss'"),
        (["run", "--dataset", "IMAGENET", "--dry-run"], "unknown dataset 'IMAGENET'"),
        (["run", "--model", "resnet", "--dry-run"], "unknown model 'resnet'"),
        (["run", "--set", "train.epochs=-1", "--dry-run"], "train.epochs must be at least 1"),
        (["run", "--set", "model.keep=many", "--dry-run"], "model.keep='many' must be an integer"),
        (["run", "--preset", "huge", "--dry-run"], "unknown preset 'huge'"),
        (["run", "--config", "/nonexistent/resolved.yaml", "--dry-run"], "does not exist"),
        (["run", "--ablate", "no_js", "--ablate", "baseline", "--dry-run"], "cannot be combined"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, message, capsys):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_dry_run_prints_resolution_order_and_round_trips(tmp_path, capsys):
    code = None
    try:
        main(["run", "--dry-run", "--preset", "tiny", "--ablate", "no_js", "--set", "train.lr=0.01"])
    except SystemExit as exc:
        code = exc.code
    out, _ = capsys.readouterr()
    assert code in (None, 0)
    assert "library defaults → svip preset for synth → --preset tiny → --ablate no_js → --set overrides" in " ".join(out.split())
    assert "lr: 0.01" in out


def test_listing_commands(capsys):
    for command, expected in (["ablations", "no_replacement"], ["models", "svip"]):
        try:
            main([command])
        except SystemExit as exc:
            assert exc.code in (None, 0)
        out, _ = capsys.readouterr()
        assert expected in out
