"""The house rules of docs/architecture.md, checked by tools rather than by hand.

- import-linter's contracts (``[tool.importlinter]`` in pyproject.toml): the library never
  imports Dagster, the emulator and the product never import each other, nothing imports the
  CLI (its entry point), the pure core does no I/O;
- a plain ``pip install kizen-sync`` brings no web server (the emulator is an extra);
- ``kizen-sync --help`` loads neither the HTTP, the SQL nor the emulator's stack, and an
  emulator command without its extra says what to install.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
WEB_SERVER = {"starlette", "uvicorn", "httptools", "uvloop"}


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )


def test_every_import_contract_is_kept() -> None:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
    result = subprocess.run(
        [Path(sys.executable).parent / "lint-imports", "--config", "pyproject.toml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout


def test_a_plain_install_brings_no_web_server() -> None:
    core = [Requirement(r) for r in requires("kizen-sync") or []]
    unconditional = {r.name for r in core if r.marker is None or "extra" not in str(r.marker)}
    assert unconditional, "kizen-sync declares no dependencies at all?"
    assert not unconditional & WEB_SERVER
    emulator_extra = {r.name for r in core if r.marker and 'extra == "emulator"' in str(r.marker)}
    assert {"starlette", "uvicorn"} <= emulator_extra


def test_help_loads_no_http_sql_or_web_server_stack() -> None:
    code = (
        "import sys\n"
        "from kizen_sync.cli import main\n"
        "sys.argv = ['kizen-sync', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'httpx', 'sqlalchemy', 'starlette', 'uvicorn', 'pydantic', 'rich'}\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in heavy), file=sys.stderr)\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "emulator" in result.stdout
    assert "demo" in result.stdout
    assert result.stderr.strip() == "[]"


# Importing the web server fails as it would in a plain install.
_WITHOUT_WEB_SERVER = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in {'starlette', 'uvicorn'}:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, Block())\n"
    "from kizen_sync.cli import main\n"
    "sys.argv = ['kizen-sync', *sys.argv[1:]]\n"
    "main()\n"
)


def test_the_emulator_command_without_its_extra_says_what_to_install() -> None:
    result = _run(_WITHOUT_WEB_SERVER, "emulator", "--port", "0")
    assert result.returncode == 2
    assert "pip install 'kizen-sync[emulator]'" in result.stderr


def test_the_demo_without_the_emulator_extra_says_what_to_install(tmp_path: Path) -> None:
    result = _run(_WITHOUT_WEB_SERVER, "demo", "--workdir", str(tmp_path))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())  # rich wraps long lines
    assert "pip install 'kizen-sync[emulator]'" in message
    assert "--kizen-url" in message
