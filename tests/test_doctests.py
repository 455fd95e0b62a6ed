"""Every example in a docstring of zslbench runs and shows what it says (the docs cannot drift from the code)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import zslbench


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(zslbench.__path__, prefix="zslbench.")
                  if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name) if t.examples]  # modules without examples pass trivially
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
