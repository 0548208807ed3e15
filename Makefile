# The two commands a newcomer needs (see README): `make demo` and `make test`.
# Each creates the virtual environment on first use; nothing else must be installed
# beyond Python 3.11+ with pip.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint dev serve clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Outcomes Hub needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

dev: $(STAMP)
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/.dagster_home} $(BIN)/hub dagster-home
	DAGSTER_HOME=$${DAGSTER_HOME:-$(CURDIR)/.dagster_home} $(BIN)/dagster dev

# The hub as a service: webhook receiver (:8787), Dagster daemon, Dagster webserver (:3000).
# Ctrl-C stops all three. Set HUB_HOME / HUB_MEMBERS_DIR as for `hub run`.
serve: $(STAMP)
	$(BIN)/hub serve

clean:
	rm -rf $(VENV) .hub .dagster_home
