# fer_bench: every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
LINT_STAMP := $(VENV)/.installed-lint
PIP := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: install test lint bench-smoke bench-static bench-dynamic bench-perf bench-parallel regress papers clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) -e .
	touch $(STAMP)

# the extras of pyproject.toml: pytest for `make test`, ruff for `make lint`
$(TEST_STAMP): $(STAMP)
	$(PIP) -e '.[test]'
	touch $(TEST_STAMP)

$(LINT_STAMP): $(STAMP)
	$(PIP) -e '.[lint]'
	touch $(LINT_STAMP)

install: $(STAMP)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(LINT_STAMP)
	$(BIN)/ruff check fer_bench tests benchmarks examples

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

# one small suite sequential and with --parallel 2: wall-time ratios (benchmarks/RESULTS.md)
bench-parallel: $(STAMP)
	$(BIN)/python benchmarks/parallel.py $(PARALLEL_ARGS)

regress: $(STAMP)
	$(BIN)/fer-bench regress --suite benchmarks/smoke.yaml --baseline leaderboards/smoke/baseline.csv

papers: $(STAMP)
	$(BIN)/fer-bench leaderboard papers

clean:
	rm -rf $(VENV) runs
