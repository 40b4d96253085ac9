#!/usr/bin/env bash
# Create .venv and install kizen-sync with every extra the demo and the tests need.
# Idempotent and quick when nothing changed: re-installs only when pyproject.toml is newer
# than the last install. Uses uv when it can (fast), else plain pip.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.kizen-sync-installed"
EXTRAS="${KIZEN_SYNC_EXTRAS:-emulator,postgres,duckdb,snowflake,bigquery,redshift,dagster,dbt,celery,k8s,dev,bench}"

COMPILED="$VENV/.kizen-sync-compiled"

# Byte-code for every installed module, written once here. Without it, a machine that sets
# PYTHONDONTWRITEBYTECODE (CI images, containers, this repository's helpers) recompiles Dagster,
# pandas, SQLAlchemy and the rest from source in every new process: each Dagster run worker, code
# server and `dagster`/`dg` command pays about 4 CPU seconds more (bench/README.md, "Dagster runs
# per executor"). Python still reads .pyc files when that variable is set; it only never writes them.
compile_bytecode() {
  echo "Compiling byte-code in $VENV (once) ..."
  "$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" kizen_sync dagster_project bench \
    >/dev/null 2>&1 || true  # a few third-party test files are not valid Python 3: ignored
  touch "$COMPILED"
}

if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ -x "$VENV/bin/kizen-sync" ]; then
  [ -f "$COMPILED" ] || compile_bytecode
  exit 0
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"kizen-sync needs Python >= 3.11, found {sys.version.split()[0]}")
PY

if ! command -v uv >/dev/null 2>&1; then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1 || true
fi

echo "Setting up $VENV (extras: $EXTRAS) ..."
# fakesnow (the Snowflake fake of the tests) runs on snowflake-connector-python 4, while
# snowflake-sqlalchemy 2.1 (the first to support SQLAlchemy 2.1) asks for 5; it works with 4.
case ",$EXTRAS," in *,dev,*) case ",$EXTRAS," in *,snowflake,*) FAKESNOW=1 ;; esac ;; esac
if command -v uv >/dev/null 2>&1; then
  [ -x "$VENV/bin/python" ] || uv venv --quiet --python "$PYTHON" "$VENV"
  uv pip install --quiet --python "$VENV/bin/python" -e ".[${EXTRAS}]"
  if [ -n "${FAKESNOW:-}" ]; then
    uv pip install --quiet --python "$VENV/bin/python" "snowflake-connector-python<5"
  fi
else
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[${EXTRAS}]"
  if [ -n "${FAKESNOW:-}" ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "snowflake-connector-python<5"
  fi
fi
compile_bytecode
touch "$STAMP"
