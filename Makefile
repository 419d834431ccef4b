# Quick start: `make demo` then `make test`. Both create .venv when it is missing.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared/data
DEMO_DATA := $(SHARED)/pneumoniamnist_subset/pneumoniamnist.npz

.PHONY: venv sysdeps demo test lint benchmark clean

$(BIN)/medlens: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,dev]"
	@touch $(BIN)/medlens

venv: $(BIN)/medlens

demo: venv
	$(BIN)/medlens demo --data $(DEMO_DATA)

# Orthanc and Chromium from Debian (the PACS and web-page tests drive them for real)
sysdeps:
	scripts/install_system_deps.sh

test: venv sysdeps
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

benchmark: venv
	$(BIN)/python benchmarks/classification.py

clean:
	rm -rf runs .pytest_cache
