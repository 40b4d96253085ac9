"""Judging from outside: Kizen (the emulator's own state) against the warehouse, and the audit.

- **Kizen equals the warehouse**: every live source row has exactly one Kizen record with
  its identifier (archived ones included in the count), live, whose values read back through
  :func:`kizen_sync.mapping.canonical_from_read` equal the row's values through
  :func:`kizen_sync.mapping.coerce`; every deleted row's record is archived.
- **Exactly one terminal audit outcome per planned record per completed run**: intermediate
  attempts are ``retry``, the last one ``success`` or ``failed``; a killed run may have fewer.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from kizen_sync import mapping
from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.config import SyncConfig
from kizen_sync.emulator import Emulator
from kizen_sync.schema import FieldSchema, ObjectSchema
from kizen_sync.warehouse import RESOLVE, StateStore
from tests.support.people import CONTACTS, DOMAIN, Row

__all__ = ["Verdict", "audit_problems", "compare", "dynamic_tags", "object_schema"]


@dataclass
class Verdict:
    """What one comparison of Kizen with the warehouse found (lists of e-mails)."""

    rows: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    not_archived: list[str] = field(default_factory=list)
    audit: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing lost, duplicated, missing or left live, and the audit is consistent."""
        return not (self.lost or self.duplicated or self.missing or self.not_archived or self.audit)

    def summary(self) -> str:
        """A short text for assertion messages."""
        parts = {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "missing": self.missing,
            "not_archived": self.not_archived,
            "audit": self.audit,
        }
        return "; ".join(f"{k}: {len(v)} e.g. {v[:3]}" for k, v in parts.items() if v) or "ok"


def object_schema(emu: Emulator, name: str = CONTACTS) -> ObjectSchema:
    """The object's schema as the connector would read it."""
    detail = emu.schema(name)
    return ObjectSchema.model_validate(
        {**detail, "fields": [FieldSchema.model_validate(f) for f in detail["fields"]]}
    )


def dynamic_tags(emu: Emulator, schema: ObjectSchema) -> dict[str, dict[str, str]]:
    """``{field: {label: id}}`` of every dynamic-tags field, read in-process (no faults)."""
    key, user, business = emu.credentials

    async def read() -> dict[str, dict[str, str]]:
        settings = ClientSettings(
            base_url="http://emulator", api_key=key, user_id=user, business_id=business
        )
        out: dict[str, dict[str, str]] = {}
        async with KizenClient(settings, transport=httpx.ASGITransport(app=emu.app)) as client:
            for f in schema.fields:
                if f.field_type == "dynamictags":
                    out[f.name] = {
                        t.name: t.id for t in await client.list_dynamic_tags(schema.name, f.id)
                    }
        return out

    knobs = emu.knobs
    emu.set_knobs(error_rate=0.0, drop_rate=0.0, slow_rate=0.0, rate_limit_rps=None)
    try:
        return asyncio.run(read())
    finally:
        emu.set_knobs(
            error_rate=knobs.error_rate,
            drop_rate=knobs.drop_rate,
            slow_rate=knobs.slow_rate,
            rate_limit_rps=knobs.rate_limit_rps,
        )


def _blank(value: Any) -> Any:
    return None if value in (None, [], ()) else value


def compare(emu: Emulator, sync: SyncConfig, rows: Mapping[int, Row], deleted: set[str]) -> Verdict:
    """Compare every record with this harness's e-mail domain against the source rows."""
    schema = object_schema(emu)
    tags = dynamic_tags(emu, schema)
    by_email: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in emu.records(CONTACTS, include_archived=True):
        values = {f["name"]: f.get("value") for f in record["fields"].values()}
        email = str(values.get("email") or "").lower()
        if email.endswith("@" + DOMAIN):
            by_email[email].append({**values, "__archived": record["archived"]})
    verdict = Verdict(rows=len(rows))
    columns = ("id", "email", "first_name", "tags", "status")
    for row in rows.values():
        email = row[1]
        found = by_email.get(email, [])
        if len(found) > 1:
            verdict.duplicated.append(email)
        if not found:
            verdict.missing.append(email)
            continue
        record = found[0]
        source = dict(zip(columns, row, strict=True))
        for spec in sync.fields:
            target = schema.field(spec.field)
            assert target is not None
            want = mapping.coerce(target, spec, source[spec.column], tags=tags.get(target.name))
            have = mapping.canonical_from_read(target, record.get(target.name))
            if _blank(want) != _blank(have) or record["__archived"]:
                verdict.lost.append(email)
                break
    for email in sorted(deleted):
        found = by_email.get(email, [])
        if len(found) > 1:
            verdict.duplicated.append(email)
        if any(not r["__archived"] for r in found):
            verdict.not_archived.append(email)
    return verdict


def audit_problems(store: StateStore, sync: str, completed: set[str]) -> list[str]:
    """Breaks of "exactly one terminal outcome per planned record per run".

    For every run in ``completed``: each audited record has exactly one terminal row
    (``success``/``failed``), it is its last row, every earlier row is ``retry``, and the run
    audited exactly ``planned + noop`` records. Any other run (killed) may miss terminal rows
    but never has two for one record. ``resolve`` rows close failures of records the run did
    not plan (``StateStore.resolve_failures``), so they are checked but not counted.
    """
    problems: list[str] = []
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in store.audit_rows(sync=sync):
        grouped[(row["run_id"], row["source_key"])].append(row)
    per_run: Counter[str] = Counter()
    for (run_id, key), rows in grouped.items():
        outcomes = [r["outcome"] for r in rows]
        terminal = [o for o in outcomes if o in ("success", "failed")]
        if run_id in completed and rows[-1]["operation"] != RESOLVE:
            per_run[run_id] += 1
        if len(terminal) > 1:
            problems.append(f"run {run_id[:8]} key {key}: {len(terminal)} terminal rows")
        elif run_id in completed and (len(terminal) != 1 or outcomes[-1] != terminal[0]):
            problems.append(f"run {run_id[:8]} key {key}: outcomes {outcomes}")
        elif run_id in completed and any(o != "retry" for o in outcomes[:-1]):
            problems.append(f"run {run_id[:8]} key {key}: non-retry before terminal")
    for summary in store.run_summaries(sync, limit=None):
        run_id = summary["run_id"]
        if run_id in completed:
            expected = summary["planned"] + summary["noop"]
            if per_run[run_id] != expected:
                problems.append(
                    f"run {run_id[:8]}: {per_run[run_id]} audited records, planned {expected}"
                )
    return problems
