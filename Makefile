# The two commands of the quick start: `make tutorial` and `make test`.
# Each creates .venv on first use and installs what it needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The tests compare against PyTorch; its CPU build is all they need (about 200 MB, where
# plain pip on Linux would fetch the CUDA build, several GB). Empty TORCH_INDEX to skip this
# index (pip also reads PIP_INDEX_URL and PIP_FIND_LINKS from the environment).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP_FLAGS := --quiet
PIP_TEST_FLAGS := $(PIP_FLAGS) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
CHECKED := src tests benchmarks notebooks

.PHONY: tutorial test notebooks lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install $(PIP_TEST_FLAGS) -e '.[test]'
	touch $@ $(VENV)/.installed

tutorial: $(VENV)/.installed
	$(BIN)/signdigits tutorial $(ARGS)

# The tests that need the real dataset find it as the tutorial does, downloading it once
# into the cache if needed; `make test OFFLINE=1` never downloads and skips those tests.
test: $(VENV)/.installed-test lint
	$(if $(OFFLINE),SIGNDIGITS_OFFLINE=1) $(BIN)/python -m pytest $(PYTEST_ARGS)

# The notebooks, each run from top to bottom in a fresh kernel by nbmake: a cell that fails
# fails the target. Under CI=true they train less (their QUICK variable), 2 to 3 minutes in
# all on 2 cores; without it, notebook 3 trains the CNN in full (about 8 minutes).
notebooks: $(VENV)/.installed-test
	$(BIN)/python -m pytest --nbmake notebooks -n 0 --nbmake-timeout=1800

lint: $(VENV)/.installed-test
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix $(CHECKED)
	$(BIN)/ruff format $(CHECKED)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
