"""The house plan, enforced: import layers and cycles (import-linter contracts in pyproject.toml), hidden
imports, and module sizes."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
PACKAGE = PROJECT / "zslbench"

#: Modules allowed past the size limit, each with the reason that splitting would scatter one concept.
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PROJECT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def test_import_contracts_hold():
    """Layers (cli → commands → ablations/sweeps/results → launch → engine → models/data/metrics/tracking →
    backbones → config → catalogue → core), no cycles between siblings, MLflow only in tracking/, Optuna only in
    sweeps/, submitit only in launch/."""
    importlinter_cli = pytest.importorskip("importlinter.cli")
    assert importlinter_cli.lint_imports(config_filename=str(PROJECT / "pyproject.toml"), no_cache=True) == 0


def _dynamic_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, target) of ``importlib.import_module(...)`` / ``__import__(...)`` calls (f-strings by their
    constant prefix; a name built at run time as '?')."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in ("import_module", "__import__") or not node.args:
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.append((node.lineno, arg.value))
        elif isinstance(arg, ast.JoinedStr):
            prefix = arg.values[0].value if arg.values and isinstance(arg.values[0], ast.Constant) else ""
            inner = [v for v in arg.values if isinstance(v, ast.FormattedValue)]
            if not prefix and inner and ast.unparse(inner[0].value) == "__name__":
                prefix = "<own package>."
            found.append((node.lineno, prefix or "?"))
        else:
            found.append((node.lineno, "?"))
    return found


def test_modules_loaded_by_importlib_lie_below_their_loader():
    """import-linter cannot see ``importlib`` imports: each one must load a module of the loader's own package
    (a lazy export, a discovered subpackage), so no hidden upward arrow or cycle exists."""
    offenders = []
    for module, path in _modules().items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for line, target in _dynamic_imports(ast.parse(path.read_text(encoding="utf-8"))):
            inside = target == "<own package>." or target.startswith(package + ".")
            if not inside:
                offenders.append(f"{path.relative_to(PROJECT)}:{line} imports {target!r} dynamically")
    assert offenders == []


def test_nothing_imports_the_root_package():
    """``zslbench/__init__`` imports the model packages (registration); a module importing the root package
    would hide an upward arrow, so the versions live in zslbench.core.version."""
    offenders = []
    for module, path in _modules().items():
        if module == "zslbench":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        submodules = {p.name for p in PACKAGE.iterdir() if p.is_dir() or p.suffix == ".py"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(alias.name == "zslbench" for alias in node.names):
                offenders.append(f"{module}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "zslbench" and node.level == 0:
                names = {alias.name for alias in node.names}
                if not all(f"{n}.py" in submodules or n in submodules for n in names):
                    offenders.append(f"{module}:{node.lineno} imports {sorted(names)} from the root package")
    assert offenders == []


def test_every_model_package_registers_itself_and_imports_no_tracking():
    import zslbench  # noqa: F401  (registers every model)
    from zslbench.catalogue import MODELS

    for entry in MODELS.registered():
        module = entry.load.__module__
        assert module.startswith(("zslbench.svip", "zslbench.baselines.")), module
        assert entry.config.__module__.rsplit(".", 1)[0] == module.rsplit(".", 1)[0]  # declared beside it


def test_no_module_is_longer_than_the_limit():
    long = {module: sum(1 for _ in path.open(encoding="utf-8")) for module, path in _modules().items()}
    over = {m: n for m, n in long.items() if n > MAX_LINES and m not in LONG_MODULES}
    assert over == {}, f"split these modules by concern (or name them in LONG_MODULES with the reason): {over}"


def test_importing_the_package_and_the_catalogue_stays_torch_free(tmp_path):
    """``zslbench --help`` must stay fast: the catalogue, config and CLI import no torch, mlflow or optuna."""
    import subprocess

    code = ("import sys, zslbench.cli, zslbench.config, zslbench.catalogue; "
            "print(sorted(m for m in ('torch', 'mlflow', 'optuna', 'timm', 'polars') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"
