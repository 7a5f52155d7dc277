# Every public target sets up what it needs first: a fresh clone needs only `make demo`,
# `make check` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The demo needs the package with the extras examples/retrieval.py uses, and no dev tools.
DEMO_EXTRAS := progress,viz
DEMO_STAMP := $(VENV)/.demo-installed
# Tests and checks need every extra (each optional module is tested with its extra; the
# packaging tests check that every extra installs) and the dev tools.
DEV_EXTRAS := dev,all,bench
DEV_STAMP := $(VENV)/.dev-installed
# Run apt-get as root directly, otherwise through sudo when there is one.
SUDO := $(shell [ "$$(id -u)" = 0 ] || ! command -v sudo >/dev/null 2>&1 || echo sudo)

.PHONY: demo test check bench lint format typecheck imports clean system-deps graphviz redis-server \
	postgresql

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(DEMO_EXTRAS)]"
	touch $@

$(DEV_STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(DEV_EXTRAS)]"
	touch $@

# Debian packages: graphviz's `dot` renders pipeline pictures (the demo draws one); the
# RedisCache tests start a real redis-server; the service store tests start a real PostgreSQL
# with initdb and pg_ctl, which Debian keeps in /usr/lib/postgresql/<version>/bin.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
		echo "Installing graphviz with apt-get"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz; }

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "Installing redis-server with apt-get"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

postgresql:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "Installing postgresql with apt-get"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

system-deps: graphviz redis-server postgresql

demo: $(DEMO_STAMP) graphviz
	$(BIN)/python examples/retrieval.py

test: $(DEV_STAMP) system-deps
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=90 -p no:cacheprovider

check: $(DEV_STAMP) lint typecheck imports

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

format: $(DEV_STAMP)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

imports: $(DEV_STAMP)
	$(BIN)/lint-imports

bench: $(DEV_STAMP) system-deps
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build src/*.egg-info
