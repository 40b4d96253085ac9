"""The bench command (``python -m bench --smoke``) runs every part end to end and writes JSON.

Timings depend on the machine, so nothing here asserts a figure: the figures are printed
(``pytest -s`` shows them) and only completeness and shape are checked: every part ran,
produced rows with its columns and its targets, left no error, and the machine facts are
there. The smoke size runs each part on tiny data with its measurements in the bench's own
process (7 s of CPU; 24 s of wall time at a load average of 8, 33-46 s at 12), so the time
limit below is a hang guard, far above that. The PostgreSQL database of the run is owned by
this test and dropped by its fixture, even when the run is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import database_name, drop_database

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("throughput", "requests", "diff", "nochange", "peers")
SECTION_KEYS = {"name", "title", "columns", "rows", "targets", "notes", "extra", "error"}
MACHINE_KEYS = ("cpu_model", "logical_cores", "python", "packages", "postgresql")
HANG_GUARD_S = 600


@pytest.fixture
def bench_database(pg_url: str) -> Iterator[str]:
    """A database name for the bench run; dropped afterwards whatever the run did."""
    name = database_name("bench")
    try:
        yield name
    finally:
        drop_database(name, pg_url)


@pytest.mark.postgres
@pytest.mark.timeout(HANG_GUARD_S + 60)
def test_smoke_bench_runs_every_part_and_writes_its_json(
    tmp_path: Path, bench_database: str
) -> None:
    out = tmp_path / "smoke.json"
    command = [sys.executable, "-m", "bench", "--smoke", "--json", str(out)]
    # Its own process group: if it has to be stopped, its emulator processes go with it.
    bench = subprocess.Popen(
        [*command, "--pg-database", bench_database],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = bench.communicate(timeout=HANG_GUARD_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(bench.pid, signal.SIGKILL)
        bench.wait()
    print(stdout)
    assert bench.returncode == 0, stderr[-4000:]
    data = json.loads(out.read_text())
    assert set(data) == {"machine", "sizes", "sections"}
    assert data["sizes"]["name"] == "smoke"
    for key in MACHINE_KEYS:
        assert data["machine"][key], key
    assert set(data["sections"]) == set(SECTIONS)
    for name in SECTIONS:
        section = data["sections"][name]
        assert set(section) == SECTION_KEYS, name
        assert section["error"] is None, (name, section["error"])
        assert section["rows"], name
        columns = [key for key, _label in section["columns"]]
        for row in section["rows"]:
            assert set(columns) <= set(row), (name, set(columns) - set(row))
        assert section["targets"], name
        for target in section["targets"]:
            assert set(target) == {"goal", "measured", "met"}, (name, target)
            assert isinstance(target["met"], bool), (name, target)
