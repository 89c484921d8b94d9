# Fresh machine: `make toy` (main job on the built-in data set), `make test` (test suite),
# `make lint` (flake8, settings in setup.cfg). Each creates/completes the virtual environment
# first (tools/setup_env.sh; safe to re-run).
# `make toy-bench`: every toy method of both detector families over 3 seeds, resumable; its
# report is copied to benchmarks/toy/ (tracked; checkpoints stay in $(BENCH_DIR)).
VENV ?= .venv
PY := $(VENV)/bin/python
METHODS ?= pkd
SEED ?= 0
BENCH_DIR ?= work_dirs/toy_bench
BENCH_SEEDS ?= 0 1 2
# students trained at a time, each with cores/JOBS threads: on 2 cores, two one-thread trainings
# finished sooner than one two-thread training after the other (1.1x, one timing on the earlier
# 128x128 recipe; README.md, "Toy Shapes")
JOBS ?= 2

.PHONY: setup toy toy-bench test lint benchmark
setup:
	MMKD_VENV=$(VENV) bash tools/setup_env.sh

toy: setup
	$(PY) tools/toy_main_job.py --methods $(METHODS) --seeds $(SEED) --jobs $(JOBS)

toy-bench: setup
	$(PY) tools/toy_main_job.py --methods all --seeds $(BENCH_SEEDS) --keep-trained \
		--work-dir $(BENCH_DIR) --jobs $(JOBS)
	mkdir -p benchmarks/toy
	cp $(BENCH_DIR)/results.md $(BENCH_DIR)/results.json $(BENCH_DIR)/results.png benchmarks/toy/

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

lint: setup
	$(PY) -m flake8

benchmark: setup
	$(PY) tools/analysis_tools/benchmark_losses.py
