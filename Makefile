# The two commands of the quick start: `make tutorial` and `make test`.
# Each creates .venv on first use and installs what it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# On machines that keep a CPU build of PyTorch on disk, use it (tests compare against PyTorch).
PIP_FLAGS := --quiet $(if $(wildcard /opt/wheels),--find-links /opt/wheels)
CHECKED := src tests benchmarks

.PHONY: tutorial test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[test]'
	touch $@ $(VENV)/.installed

tutorial: $(VENV)/.installed
	$(BIN)/signdigits tutorial $(ARGS)

test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix $(CHECKED)
	$(BIN)/ruff format $(CHECKED)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
