# Stepwise — developer commands. Everything runs inside the uv workspace (.venv).
UV ?= uv
PYTEST_ARGS ?=

.PHONY: sync run test test-fast lint fmt bench migrate clean

sync:
	$(UV) sync --locked

run: sync
	$(UV) run --locked stepwise dev

test: sync
	$(UV) run --locked pytest $(PYTEST_ARGS)

test-fast: sync
	$(UV) run --locked pytest -m "not e2e and not slow" $(PYTEST_ARGS)

lint: sync
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy

fmt: sync
	$(UV) run --locked ruff format .
	$(UV) run --locked ruff check --fix .

bench: sync
	$(UV) run --locked python -m stepwise_cli.bench

migrate: sync
	$(UV) run --locked python -m stepwise_contract.migrate

clean:
	rm -rf .stepwise .pytest_cache .mypy_cache .ruff_cache
