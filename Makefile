# Fresh machine: `make toy` (main job on the built-in data set), `make test` (test suite),
# `make lint` (flake8, settings in setup.cfg). Each creates/completes the virtual environment
# first (tools/setup_env.sh; safe to re-run).
VENV ?= .venv
PY := $(VENV)/bin/python
METHODS ?= pkd
SEED ?= 0

.PHONY: setup toy test lint benchmark
setup:
	MMKD_VENV=$(VENV) bash tools/setup_env.sh

toy: setup
	$(PY) tools/toy_main_job.py --methods $(METHODS) --seed $(SEED)

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

lint: setup
	$(PY) -m flake8

benchmark: setup
	$(PY) tools/analysis_tools/benchmark_losses.py
