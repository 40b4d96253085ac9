"""``python -m bench.sqlite_diff`` (the SQLite diff's parts and the fingerprint forms tried
instead, ``bench/README.md``) runs on a small fixture and prints a row per statement.

No figure is asserted (they depend on the machine); the time limit is a hang guard.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_statement_runs_and_is_printed(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.sqlite_diff", "--rows", "500", "--repeats", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["statement", "CPU", "s", "wall", "s", "rows"]
    assert len(lines) == 16  # header, 14 statements, the load line
    rows = {line[:56].strip(): line[56:].split() for line in lines[1:-1]}
    assert rows["plain streamed scan (section 3)"][2] == "500"  # 1 % churn: 1 new, 1 deleted
    assert rows["vanished keys: EXCEPT (shipped)"][2] == "1"  # the deleted row's state
    assert lines[-1].startswith("best of 1; load average")
