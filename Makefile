# Two entry points, each doing its own set-up: `make run` (3 epochs of the tournament on the
# embedded defaults) and `make test` (lint + the whole test suite). Both create .venv on first use.
# the first interpreter that actually runs and is 3.11+ (pyenv shims exist for versions that do not run)
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EPOCHS ?= 3

.PHONY: run test lint bench mutation clean-state

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required: install it, or set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/dream run --epochs $(EPOCHS)

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

# mutation score of the rules (bench/mutation.py): the pure modules; `make mutation ARGS=--full` for all
mutation: $(STAMP)
	$(BIN)/python -m bench.mutation $(ARGS)

# stops everything, then deletes .dream/ (the book with it): asks first; YES=1 does not
clean-state: $(STAMP)
	$(BIN)/dream erase $(if $(YES),--yes)
