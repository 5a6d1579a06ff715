# fer_bench: every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test bench-smoke bench-static bench-dynamic regress clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

bench-smoke: $(STAMP)
	$(BIN)/fer-bench bench benchmarks/smoke.yaml

bench-static: $(STAMP)
	$(BIN)/fer-bench bench benchmarks/static.yaml

bench-dynamic: $(STAMP)
	$(BIN)/fer-bench bench benchmarks/dynamic.yaml

clean:
	rm -rf $(VENV) runs
