# The two Quick start commands of the README are `make demo` and `make test`.
# Each sets everything up first (a local .venv), so both work on a fresh clone.
PY := .venv/bin/python
BIN := .venv/bin

.PHONY: setup demo test lint typecheck pytest emulator dagster screenshots bench reliability clean

setup:
	@./scripts/setup.sh

demo: setup
	@$(BIN)/kizen-sync demo --workdir .demo
	@$(PY) -m dagster_project.demo_run .demo

test: setup lint typecheck
	@./scripts/ensure-postgres.sh
	@./scripts/ensure-chromium.sh
	@./scripts/ensure-broker.sh
	@$(BIN)/pytest -q

lint:
	@$(BIN)/ruff check kizen_sync dagster_project tests bench
	@$(BIN)/ruff format --check kizen_sync dagster_project tests bench

typecheck:
	@$(BIN)/mypy

emulator: setup
	@$(BIN)/kizen-sync emulator --host 127.0.0.1 --port 8765

dagster: setup
	@DAGSTER_HOME= $(BIN)/dagster dev -w workspace.yaml

screenshots: setup
	@./scripts/ensure-chromium.sh
	@KIZEN_SYNC_SCREENSHOTS=docs/img $(BIN)/pytest -q tests/dagster/test_dagster_ui.py

bench: setup
	@./scripts/ensure-postgres.sh
	@$(PY) -m bench

reliability: setup
	@$(PY) -m bench.reliability

clean:
	rm -rf .venv .demo .pytest_cache .mypy_cache .ruff_cache
