# One command each: `make run` installs and launches; `make test` installs and runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Numba's on-disk cache of compiled kernels: outside the checkout, shared by every run here.
export NUMBA_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/gradient-lab/numba

.PHONY: run test install install-test lint bench mutants clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(BIN)/gradient-lab warm-up

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,peers]" ./tests/sample_plugin_pkg

run: install
	$(BIN)/python -m gradient_lab.app.platform_check --install
	$(BIN)/gradient-lab

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	mkdir -p $(VENV)/typecheck/gradient_lab
	for folder in engine plugins app assets; do \
	  ln -sfn "$(CURDIR)/$$folder" $(VENV)/typecheck/gradient_lab/$$folder; done
	$(BIN)/mypy

test: lint
	$(BIN)/gradient-lab bench --quick
	# the 3D view's test needs a virtual display: installed where this is root with apt
	-$(BIN)/python -m gradient_lab.app.platform_check --install --virtual-display
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest --durations=15

bench: install-test
	$(BIN)/gradient-lab bench --peers

# Deliberate bugs from tests/mutation/mutants.toml, one at a time: the suite must catch them.
mutants: install-test
	$(BIN)/python tests/mutation/run.py

clean:
	rm -rf $(VENV) build *.egg-info
