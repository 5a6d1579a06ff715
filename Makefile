# fer_bench: every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test bench-smoke bench-static bench-dynamic bench-perf regress papers clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

bench-smoke: $(STAMP)
	$(BIN)/fer-bench bench benchmarks/smoke.yaml $(BENCH_ARGS)

# dataset trees under $(FER_DATA)/<dataset>; extra flags (e.g. --devices 4 --accelerator gpu) via BENCH_ARGS
bench-static: $(STAMP)
	$(BIN)/fer-bench bench benchmarks/static.yaml $(BENCH_ARGS)

bench-dynamic: $(STAMP)
	$(BIN)/fer-bench bench benchmarks/dynamic.yaml $(BENCH_ARGS)

# data-pipeline figures (ratios, see benchmarks/RESULTS.md); e.g. PERF_ARGS="--json --methods resnet18"
bench-perf: $(STAMP)
	$(BIN)/python benchmarks/perf.py $(PERF_ARGS)

regress: $(STAMP)
	$(BIN)/fer-bench regress --suite benchmarks/smoke.yaml --baseline leaderboards/smoke/baseline.csv

papers: $(STAMP)
	$(BIN)/fer-bench leaderboard papers

clean:
	rm -rf $(VENV) runs
