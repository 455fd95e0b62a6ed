# Two commands for a fresh machine:  `make run` (set up + the main job), `make test` (set up + tests).
# Installing is a no-op once .venv is up to date with pyproject.toml.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.zslbench-installed
PYTEST_ARGS ?=

.PHONY: setup run test bench bench-quick clean

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

# Benchmarks: figures (ratios) and verdicts in benchmarks/results/latest.json and benchmarks/RESULTS.md.
# ZSLBENCH_BENCH_FULL=1: the TransZero memory run uses a full CUB-sized feature cache (~9 GiB of disk, +5 min).
bench: setup
	$(PY) -m pytest benchmarks --benchmark-json=benchmarks/results/benchmark.json $(PYTEST_ARGS); \
	status=$$?; $(PY) benchmarks/render_results.py benchmarks/results/latest.json benchmarks/RESULTS.md; exit $$status

# The same machinery on tiny geometries (< 90 s): figures to benchmarks/results/quick.json, not judged.
bench-quick: setup
	ZSLBENCH_BENCH_QUICK=1 $(PY) -m pytest benchmarks --benchmark-json=benchmarks/results/quick-benchmark.json \
		$(PYTEST_ARGS); status=$$?; \
	$(PY) benchmarks/render_results.py benchmarks/results/quick.json benchmarks/results/quick.md; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
