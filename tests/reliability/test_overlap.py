"""Two real ``kizen-sync run`` processes on one sync at once (tests/support/overlap.py).

The first run's writes are held at its gate while the source changes and the second run
starts; without a lease the second run's newer values were overwritten by the first run's
older ones while the newer state was stored (values no later run repairs). The full matrix
(every moment, waiting or not, both warehouses) runs in ``python -m bench.reliability``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.overlap import overlap_run


@pytest.mark.postgres
def test_a_second_run_waits_for_the_first_and_kizen_ends_equal_to_the_source(
    tmp_path: Path, pg_url: str, pg_schema: str
) -> None:
    result = overlap_run(tmp_path, warehouse_url=pg_url, state_schema=pg_schema, moment="apply")
    assert result.exits == {"a": 0, "b": 0}
    assert result.waited == ["b"]  # it said which run it waited for
    assert result.stale == []  # nothing Kizen holds differs while the state says "in step"
    assert result.after.ok, result.after.summary()


def test_a_run_started_while_another_sends_exits_3_and_sends_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    result = overlap_run(tmp_path, warehouse_url=url, moment="apply", wait=False)
    assert result.exits == {"a": 0, "b": 3}
    told = (tmp_path / "run-b.log").read_text()
    assert "another run holds the sync: run " in " ".join(told.split())
    assert result.stale == []
    assert result.after.ok, result.after.summary()
