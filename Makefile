# One command each: `make run` installs and launches; `make test` installs and runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,peers]" ./tests/sample_plugin_pkg

run: install
	$(BIN)/gradient-lab

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/gradient-lab bench --quick
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench: install-test
	$(BIN)/gradient-lab bench --peers

clean:
	rm -rf $(VENV) build *.egg-info
