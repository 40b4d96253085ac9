"""Relationships by the related record's name and dynamic tags created on demand, checked
against what the emulator holds and the requests it logged (SQLite and PostgreSQL).
"""

from __future__ import annotations

from typing import Any

from kizen_sync.models import RunOptions
from tests.integration.conftest import CONTACTS, Env

ACME = "7f1e2d3c-0000-4000-8000-000000000001"
GLOBEX = "7f1e2d3c-0000-4000-8000-000000000002"
INITECH = "7f1e2d3c-0000-4000-8000-000000000003"


def leads(db: Any, rows: list[tuple[int, str, str | None, str | None]]) -> None:
    db.run("DROP TABLE IF EXISTS {s}leads")
    db.run("CREATE TABLE {s}leads (id INTEGER PRIMARY KEY, email TEXT, company TEXT, tags TEXT)")
    for row in rows:
        db.run(
            "INSERT INTO {s}leads VALUES (:i, :e, :c, :t)",
            dict(zip(("i", "e", "c", "t"), row, strict=True)),
        )


def runner(env: Env, **sync: Any) -> Any:
    spec = {
        "source": {"table": env.db.table("leads"), "primary_key": ["id"]},
        "fields": [
            {"column": "email", "field": "email"},
            {"column": "company", "field": "company_primary"},
            {"column": "tags", "field": "tags", "format": "delimited"},
        ],
    } | sync
    return env.runner(**spec)


def kizen_contacts(env: Env) -> dict[str, dict[str, Any]]:
    out = {}
    for record in env.emu.records(CONTACTS):
        values = {f["name"]: f["value"] for f in record["fields"].values()}
        if str(values.get("email", "")).startswith("lead"):
            company = values.get("company_primary")
            out[values["email"]] = {
                "company": company["id"] if company else None,
                "tags": sorted(t["name"] for t in values.get("tags") or []),
            }
    return out


def test_a_relationship_column_may_hold_the_related_records_name(env: Env) -> None:
    leads(
        env.db,
        [
            (1, "lead1@example.com", "Acme Corp", None),
            (2, "lead2@example.com", "Initech", None),
            (3, "lead3@example.com", GLOBEX, None),  # an id still works
            (4, "lead4@example.com", "Acme Corp", None),
            (5, "lead5@example.com", "Nope Inc", None),
        ],
    )
    report = runner(env, failure_threshold=1.0).run("contacts")
    assert (report.counts.created, report.counts.failed) == (4, 1)
    held = kizen_contacts(env)
    assert {email: v["company"] for email, v in held.items()} == {
        "lead1@example.com": ACME,
        "lead2@example.com": INITECH,
        "lead3@example.com": GLOBEX,
        "lead4@example.com": ACME,
    }
    # One lookup per distinct name, cached for the run.
    lookups = env.emu.request_log.total(
        method="GET", route="/api/records/{object_identifier}/lookup"
    )
    assert lookups == 3  # "Acme Corp", "Initech", "Nope Inc"
    [failure] = runner(env).open_failures("contacts")
    assert failure["source_key"] == "5"
    assert "'Nope Inc'" in failure["error_message"]
    assert "company_primary" in failure["error_message"]


def test_a_missing_tag_fails_its_row_naming_the_tag_unless_the_sync_creates_it(env: Env) -> None:
    leads(
        env.db,
        [(1, "lead1@example.com", None, "VIP,Brand New"), (2, "lead2@example.com", None, "Beta")],
    )
    report = runner(env, failure_threshold=1.0).run("contacts")
    assert (report.counts.created, report.counts.failed) == (1, 1)
    [failure] = runner(env).open_failures("contacts")
    assert "tag 'Brand New' is not a tag of tags" in failure["error_message"]
    assert "create_missing_tags" in failure["error_message"]

    creating = runner(env, create_missing_tags=True)
    env.emu.request_log.reset()
    dry = creating.plan("contacts")
    assert dry.counts.created == 1
    assert env.emu.request_log.total(method="POST") == 0  # a plan creates nothing
    assert "Brand New" not in {t["name"] for t in _tags(env)}

    # Turning the option on sends the parked row again (the mapping changed) and creates the tag.
    report = creating.run("contacts")
    assert (report.status, report.counts.created, report.counts.failed) == ("success", 1, 0)
    assert "Brand New" in {t["name"] for t in _tags(env)}
    assert kizen_contacts(env)["lead1@example.com"]["tags"] == ["Brand New", "VIP"]
    options = "/api/custom-objects/{object_pk}/fields/{field_id}/options"
    assert env.emu.request_log.total(method="POST", route=options) == 1
    # Once created, the tag is an ordinary tag: no second creation.
    leads(
        env.db,
        [
            (1, "lead1@example.com", None, "VIP,Brand New"),
            (2, "lead2@example.com", None, "Beta,brand new"),
        ],
    )
    creating.run("contacts", RunOptions())
    assert env.emu.request_log.total(method="POST", route=options) == 1
    assert kizen_contacts(env)["lead2@example.com"]["tags"] == ["Beta", "Brand New"]


def _tags(env: Env) -> list[dict[str, Any]]:
    schema = env.emu.schema(CONTACTS)
    field = next(f for f in schema["fields"] if f["name"] == "tags")
    contacts = next(o for o in env.emu.business.objects if o.name == CONTACTS)
    return list(contacts.by_id[field["id"]].spec.get("tags") or [])
