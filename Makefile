# Two commands for a fresh machine:  `make run` (set up + the main job), `make test` (set up + tests).
# Installing is a no-op once .venv is up to date with pyproject.toml.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.zslbench-installed
PYTEST_ARGS ?=

.PHONY: setup run test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/zslbench run

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m pytest benchmarks $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
