"""Fixtures of the Dagster tests.

Each test gets a fresh SQLite warehouse seeded from ``sql/demo_warehouse.sql``, a fresh demo
emulator served over real HTTP on 127.0.0.1, a sync file pointing at both (built from the
demo's), and a temporary Dagster instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_world import Project

from kizen_sync.demo import seed_warehouse
from kizen_sync.emulator import Emulator


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    emulator = Emulator.demo()
    api_key = emulator.credentials[0]
    monkeypatch.setenv("KIZEN_API_KEY", api_key)
    url = seed_warehouse(tmp_path / "warehouse.db")
    with emulator.serve(host="127.0.0.1", port=0) as base_url, dg.instance_for_test() as instance:
        yield Project(tmp_path, url, emulator, base_url, instance)
    emulator.close()
