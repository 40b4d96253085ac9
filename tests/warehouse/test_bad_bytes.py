"""Bad bytes are row failures that name the row and the column; the rest of the sync goes on.

SQLite stores text as it is given, so a row can hold bytes that are not UTF-8 (a load from a
latin-1 file, a CAST of a BLOB). Reading such a value used to stop the whole sync with
"user-defined function raised exception", naming no row or column. On PostgreSQL a ``json``
column is fingerprinted through ``jsonb`` (keys in one order), which refuses ``\\u0000``:
that row used to stop the whole diff the same way. Kizen is read back from the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from kizen_sync.config import SyncConfig
from kizen_sync.warehouse import ChangeDetector, Warehouse
from tests.support.contacts import Contacts, contacts_world

BAD = "CAST(X'426fff62' AS TEXT)"  # 'Bo', a byte that is never UTF-8, 'b'


@pytest.fixture
def world(sqlite_url: str) -> Iterator[Contacts]:
    from tests.conftest import Db

    warehouse = Warehouse(sqlite_url)
    try:
        with contacts_world(Db(warehouse, None)) as contacts:
            yield contacts
    finally:
        warehouse.dispose()


def _failures(world: Contacts) -> dict[str, dict[str, Any]]:
    return {f["source_key"]: f for f in world.store().open_failures("people")}


def test_a_row_with_invalid_utf8_fails_alone_and_names_its_column(world: Contacts) -> None:
    world.source([(1, "ann@example.com", "Ann"), (2, "bob@example.com", "x"), (3, "c@x.com", "C")])
    world.db.run(f"UPDATE people SET first_name = {BAD} WHERE id = 2")
    with world.runner(failure_threshold=1.0) as runner:
        report = runner.run("people")
    assert (report.counts.created, report.counts.failed) == (2, 1)
    assert world.live() == {"ann@example.com": "Ann", "c@x.com": "C"}
    failure = _failures(world)["2"]
    assert failure["error_class"] == "RowStateError"
    assert "'first_name'" in failure["error_message"]
    assert "UTF-8" in failure["error_message"]
    assert "no Kizen record was created for it" in failure["error_message"]
    # Fixed in the source: the next run sends it.
    world.db.run("UPDATE people SET first_name = 'Bob' WHERE id = 2")
    with world.runner() as runner:
        assert runner.run("people").status == "success"
    assert world.live()["bob@example.com"] == "Bob"
    assert _failures(world) == {}


def test_a_synced_row_that_gets_bad_bytes_keeps_its_record(world: Contacts) -> None:
    world.source([(1, "ann@example.com", "Ann"), (2, "bob@example.com", "Bob")])
    with world.runner() as runner:
        runner.run("people")
    world.db.run(f"UPDATE people SET first_name = {BAD} WHERE id = 2")
    world.db.run("UPDATE people SET first_name = 'Annie' WHERE id = 1")
    with world.runner(failure_threshold=1.0) as runner:
        report = runner.run("people")
    assert (report.counts.updated, report.counts.archived, report.counts.failed) == (1, 0, 1)
    assert world.live() == {"ann@example.com": "Annie", "bob@example.com": "Bob"}
    assert sorted(_failures(world)) == ["2"]
    assert "its Kizen record keeps its values" in _failures(world)["2"]["error_message"]


def test_bad_bytes_in_a_primary_key_name_the_key_column(world: Contacts) -> None:
    world.source([("a", "ann@example.com", "Ann")], key_type="TEXT")
    world.db.run(f"INSERT INTO people VALUES ({BAD}, 'bob@example.com', 'Bob')")
    with world.runner(failure_threshold=1.0) as runner:
        report = runner.run("people")
    assert (report.counts.created, report.counts.failed) == (1, 1)
    assert world.live() == {"ann@example.com": "Ann"}
    (key,) = set(_failures(world)) - {"a"}
    assert "\\xff" in key  # shown, not decoded into something else
    assert "'id'" in _failures(world)[key]["error_message"]


# --- PostgreSQL json / jsonb --------------------------------------------------------------


def _json_sync(table: str) -> SyncConfig:
    return SyncConfig.model_validate(
        {
            "name": "docs",
            "object": "accounts",
            "source": {"table": table, "primary_key": ["id"]},
            "identity": {"match_on": "name"},
            "fields": [
                {"column": "name", "field": "name"},
                {"column": "data", "field": "labels", "format": "json"},
                {"column": "doc", "field": "products", "format": "json"},
            ],
        }
    )


def _changed(detector: ChangeDetector) -> dict[str, str]:
    return {r.source_key: r.kind.value for chunk in detector.iter_changes() for r in chunk}


@pytest.mark.postgres
def test_json_keys_in_another_order_are_no_change_and_a_real_change_always_is(
    pg_url: str, pg_schema: str, result: Any
) -> None:
    warehouse = Warehouse(pg_url, state_schema=pg_schema)
    try:
        with warehouse.engine.begin() as conn:
            conn.execute(
                text(
                    f'CREATE TABLE "{pg_schema}".d '
                    "(id int PRIMARY KEY, name text, data json, doc jsonb)"
                )
            )
            conn.execute(
                text(
                    f'INSERT INTO "{pg_schema}".d VALUES '
                    """(1, 'one', '{"b": 1, "a": [2, 1]}', '{"y": {"q": 1, "p": 2}, "x": 1}'),"""
                    """(2, 'two', '{"k": "v"}', '{"k": "v"}'),"""
                    """(3, 'nul', '{"k": "\\u0000"}', '{"k": 1}')"""
                )
            )
        detector = ChangeDetector(warehouse, _json_sync(f"{pg_schema}.d"))
        first = {r.source_key: r for chunk in detector.iter_changes() for r in chunk}
        assert sorted(first) == ["1", "2", "3"]  # the \\u0000 row did not stop the diff
        detector.store.record_results(
            "r1",
            detector.sync,
            None,
            [result(k, fingerprint=r.fingerprint, values={}) for k, r in first.items()],
        )
        assert _changed(detector) == {}

        def run(sql: str) -> None:
            with warehouse.engine.begin() as conn:  # driver SQL: JSON has colons
                conn.exec_driver_sql(sql.replace("{t}", f'"{pg_schema}".d'))

        # The same documents, keys written in another order, other whitespace: no change.
        run(
            """UPDATE {t} SET data = '{ "a":[2,1],  "b":1 }', """
            """doc = '{"x":1,"y":{"p":2,"q":1}}' WHERE id = 1"""
        )
        assert _changed(detector) == {}
        # Real changes, however small: an array's order, a number's form, a nested value.
        for sql in (
            """UPDATE {t} SET data = '{"a": [1, 2], "b": 1}' WHERE id = 1""",
            """UPDATE {t} SET data = '{"k": "v "}' WHERE id = 2""",
            """UPDATE {t} SET doc = '{"k": 1.0}' WHERE id = 3""",
            """UPDATE {t} SET data = '{"k": "\\u0000\\u0000"}' WHERE id = 3""",
        ):
            run(sql)
            changed = _changed(detector)
            assert len(changed) >= 1, sql
            current = {r.source_key: r for chunk in detector.iter_changes() for r in chunk}
            detector.store.record_results(
                "r2",
                detector.sync,
                None,
                [result(k, fingerprint=r.fingerprint, values={}) for k, r in current.items()],
            )
            assert _changed(detector) == {}
    finally:
        warehouse.dispose()
