# Every public target sets up what it needs first: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV_STAMP := $(VENV)/.dev-installed
BENCH_STAMP := $(VENV)/.bench-installed
# Run apt-get as root directly, otherwise through sudo when there is one.
SUDO := $(shell [ "$$(id -u)" = 0 ] || ! command -v sudo >/dev/null 2>&1 || echo sudo)

.PHONY: demo test check bench lint format typecheck imports clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEV_STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,dask,redis,viz,progress,otel]"
	touch $@

$(BENCH_STAMP): pyproject.toml $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,dask,redis,viz,progress,otel,bench]"
	touch $@

# The RedisCache tests start a real redis-server; graphviz renders pipeline diagrams.
system-deps:
	@command -v redis-server >/dev/null 2>&1 && command -v dot >/dev/null 2>&1 || { \
		echo "Installing redis-server and graphviz with apt-get"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server graphviz; }

demo: $(DEV_STAMP) system-deps
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

bench: $(BENCH_STAMP) system-deps
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build src/*.egg-info
