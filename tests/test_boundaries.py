"""The dependency rule: kizen_sync is a plain library and never imports Dagster."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kizen_sync"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_module_of_kizen_sync_imports_dagster() -> None:
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] in {"dagster", "dagster_project"}
        )
        for path in PACKAGE.rglob("*.py")
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, f"kizen_sync must not import Dagster: {offenders}"


def test_importing_every_kizen_sync_module_leaves_dagster_unloaded() -> None:
    # A fresh interpreter: import every module of the package (not the `python -m` entry
    # points, which would start servers), then look at sys.modules.
    code = (
        "import importlib, pkgutil, sys, kizen_sync\n"
        "for m in pkgutil.walk_packages(kizen_sync.__path__, 'kizen_sync.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "top = {'dagster', 'dagster_project'}\n"
        "loaded = sorted(n for n in sys.modules if n.split('.')[0] in top)\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"importing kizen_sync loaded: {out.stdout.strip()}"
