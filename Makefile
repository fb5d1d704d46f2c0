# Stepwise — developer commands. Everything runs inside the uv workspace (.venv).
#
# uv: the one on PATH, else one this Makefile installed into .stepwise/uv (with `python3 -m venv`
# and pip, from PyPI) the first time it was missing. uv uses the machine's python3 when it is
# 3.11–3.13, else finds or fetches one that is.
PYTHON ?= python3
UV_REQUIREMENT := uv>=0.8,<0.14
BOOTSTRAP_UV := .stepwise/uv/bin/uv
UV ?= $(or $(shell command -v uv 2>/dev/null),$(BOOTSTRAP_UV))
PYTEST_ARGS ?=
# Every target on another supported Python: `make test PYTHON_VERSION=3.13` (a version uv can find:
# python3.13 on PATH, or a uv-managed one, which uv downloads where it may; or an interpreter's
# path). Each such Python gets its own environment under .stepwise/, leaving .venv as it is.
PYTHON_VERSION ?=
ifneq ($(strip $(PYTHON_VERSION)),)
export UV_PYTHON := $(PYTHON_VERSION)
export UV_PROJECT_ENVIRONMENT := .stepwise/venv-$(subst /,-,$(PYTHON_VERSION))
endif
BENCH_ARGS ?=

.PHONY: uv sync run test test-fast test-unit lint fmt bench migrate clean

uv:
	@if ! command -v "$(UV)" >/dev/null 2>&1 && [ ! -x "$(UV)" ]; then \
	  echo "uv is not on PATH: installing $(UV_REQUIREMENT) into .stepwise/uv (once)…"; \
	  if ! { $(PYTHON) -m venv .stepwise/uv && \
	         .stepwise/uv/bin/python -m pip install --quiet --disable-pip-version-check \
	           "$(UV_REQUIREMENT)"; }; then \
	    rm -rf .stepwise/uv; \
	    echo "make: could not install uv with $(PYTHON). Install it, then run make again:" >&2; \
	    echo "    python3 -m pip install --user uv" >&2; \
	    exit 1; \
	  fi; \
	fi

sync: uv
	$(UV) sync --locked

# only what `make run` runs: the dev group (test and lint tools) is `make test`'s business
run: uv
	$(UV) run --locked --no-dev stepwise dev

test: sync
	$(UV) run --locked pytest $(PYTEST_ARGS)

test-fast: sync
	$(UV) run --locked pytest -m "not e2e and not slow" $(PYTEST_ARGS)

# no server at all (markers set by conftest.py from the fixtures a test uses; docs/testing.md)
test-unit: sync
	$(UV) run --locked pytest -m "not temporal and not postgres and not nats and not browser" $(PYTEST_ARGS)

lint: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy

fmt: sync
	$(UV) run --locked ruff format .
	$(UV) run --locked ruff check --fix .

bench: sync
	$(UV) run --locked python -m stepwise_devkit.bench $(BENCH_ARGS)

migrate: sync
	$(UV) run --locked python -m stepwise_contract.platform.migrate

clean:
	rm -rf .stepwise .pytest_cache .mypy_cache .ruff_cache
