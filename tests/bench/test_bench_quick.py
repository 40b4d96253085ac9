"""The quick bench (``python -m bench --quick``) runs end to end and writes every section.

Timings depend on the machine, so nothing here asserts a figure: the figures are printed
(``pytest -s`` shows them) and only completeness is checked, i.e. that every part ran,
produced rows and left no error, within CI's time budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("throughput", "requests", "diff", "nochange", "peers")
TIMEOUT_S = 89


@pytest.mark.postgres
def test_quick_bench_writes_every_section(tmp_path: Path, pg_url: str) -> None:
    out = tmp_path / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["sizes"]["name"] == "quick"
    for key in ("cpu_model", "logical_cores", "python", "packages", "postgresql"):
        assert data["machine"][key], key
    for name in SECTIONS:
        section = data["sections"][name]
        assert section["error"] is None, (name, section["error"])
        assert section["rows"], name
        assert section["targets"], name
