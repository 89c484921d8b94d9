# Fresh machine: `make toy` (main job on the built-in data set), `make test` (test suite).
# Both create/complete the virtual environment first (tools/setup_env.sh; safe to re-run).
VENV ?= .venv
PY := $(VENV)/bin/python
METHODS ?= pkd
SEED ?= 0

.PHONY: setup toy test benchmark
setup:
	MMKD_VENV=$(VENV) bash tools/setup_env.sh

toy: setup
	$(PY) tools/toy_main_job.py --methods $(METHODS) --seed $(SEED)

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

benchmark: setup
	$(PY) tools/analysis_tools/benchmark_losses.py
