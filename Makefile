# The two commands: `make run` (main job) and `make test` (lint + whole test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.yaml
DATA ?=
OFFLINE ?=
PYTEST_ARGS ?=

.PHONY: run test lint pytest test-fast test-slow backtest train bot api install dev clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

run: install
	$(BIN)/cryptopred --config $(CONFIG) backtest $(if $(DATA),--data "$(DATA)") $(if $(OFFLINE),--offline)

test: dev
	$(MAKE) lint
	$(MAKE) pytest

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core data storage ml serving strategy backtests bot api cli
	$(BIN)/mypy --strict --follow-imports=silent core storage serving api bot
	$(BIN)/hadolint Dockerfile

pytest: dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: dev
	$(BIN)/python -m pytest -m 'not slow and not network' $(PYTEST_ARGS)

test-slow: dev
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

train: install
	$(BIN)/cryptopred --config $(CONFIG) train $(if $(DATA),--data "$(DATA)") $(if $(OFFLINE),--offline)

backtest: run

bot: install
	$(BIN)/cryptopred --config $(CONFIG) live

api: install
	$(BIN)/cryptopred --config $(CONFIG) serve

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
