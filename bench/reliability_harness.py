"""Reliability harness: seeded fault runs and ``kill -9`` loops against the emulator.

Shared by ``tests/reliability`` (small sizes, in CI) and ``python -m bench.reliability`` (the
full figures in RELIABILITY.md). Everything here is about *observable* outcomes, taken from
the emulator's side, never from the connector's own report:

- **Kizen equals the warehouse**: every live source row has exactly one Kizen record with
  its identifier (archived ones included in the count), live, whose values read back through
  :func:`kizen_sync.mapping.canonical_from_read` equal the row's values through
  :func:`kizen_sync.mapping.coerce`; every deleted row's record is archived.
- **Exactly one terminal audit outcome per planned record per completed run**: intermediate
  attempts are ``retry``, the last one ``success`` or ``failed``; a killed run may have fewer.
- **Re-sends after a crash** are derived from a journal of every record write the emulator
  answered (an ASGI wrapper around its app, :class:`Journal`) and from the audit table.

All traffic stays on 127.0.0.1; every wait is bounded by a deadline and every process
started here is killed and reaped by its pid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from starlette.requests import ClientDisconnect

from kizen_sync import mapping
from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.config import ProjectConfig, SyncConfig, parse_config
from kizen_sync.emulator import Emulator
from kizen_sync.engine import SyncRunner
from kizen_sync.errors import KizenSyncError
from kizen_sync.schema import FieldSchema, ObjectSchema
from kizen_sync.warehouse import RESOLVE, StateStore, Warehouse

CONTACTS = "client_client"
SYNC = "people"
TABLE = "people"
DOMAIN = "reliability.example"
TAGS = ("VIP", "Newsletter", "Churn Risk", "Partner", "Beta")
STATUSES = ("Opted In", "Not Opted In", "Unsubscribed From All")
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: Results the executor hands to the store per batch (``Executor.flush_every``).
FLUSH_EVERY = 200

Row = tuple[int, str, str, str | None, str]  # id, email, first_name, tags, status


# --- the emulator's write journal --------------------------------------------------------------


@dataclass(frozen=True)
class JournalEntry:
    """One record write the emulator answered (or dropped).

    Attributes:
        seq: position in the journal (0-based).
        method: HTTP method.
        path: URL path.
        status: status the emulator started its answer with (``None`` if it never did).
        dropped: the connection was cut on purpose after the answer started.
        identifier: ``lookup_value`` of an upsert.
        record_id: the record addressed (from the path, or the answer of an upsert/add).
    """

    seq: int
    method: str
    path: str
    status: int | None
    dropped: bool
    identifier: str | None
    record_id: str | None

    @property
    def applied(self) -> bool:
        """The emulator processed the write and said so with a 2xx."""
        return self.status is not None and 200 <= self.status < 300 and not self.dropped


class Journal:
    """ASGI wrapper around the emulator app that records every write to a record.

    The emulator's own request log counts requests per route and status, which is enough for
    fault counts but cannot say *which* record a write touched; re-sends per crash need that.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._entries: list[JournalEntry] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def entries(self, start: int = 0, end: int | None = None) -> list[JournalEntry]:
        """A copy of the entries ``[start, end)``."""
        with self._lock:
            return list(self._entries[start:end])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request through, remembering its body, status and answer."""
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or not path.startswith("/api/records/")
        ):
            await self.app(scope, receive, send)
            return
        body, answer = bytearray(), bytearray()
        status: list[int | None] = [None]

        async def receive_body() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def send_answer(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                answer.extend(message.get("body", b""))
            await send(message)

        dropped = False
        try:
            await self.app(scope, receive_body, send_answer)
        except Exception:
            dropped = True
            raise
        finally:
            self._add(scope["method"], path, status[0], dropped, bytes(body), bytes(answer))

    def _add(
        self, method: str, path: str, status: int | None, dropped: bool, body: bytes, answer: bytes
    ) -> None:
        parts = path.strip("/").split("/")  # api, records, object, id|upsert|add[, unarchive]
        identifier = record_id = None
        if len(parts) >= 4 and parts[3] not in ("upsert", "add"):
            record_id = parts[3].lower()
        else:
            request, response = _json(body), _json(answer)
            if isinstance(request, dict):
                identifier = request.get("lookup_value")
            if isinstance(response, dict) and isinstance(response.get("id"), str):
                record_id = response["id"].lower()
        with self._lock:
            entry = JournalEntry(
                len(self._entries), method, path, status, dropped, identifier, record_id
            )
            self._entries.append(entry)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


class _QuietDisconnects(logging.Filter):
    """Drop uvicorn's traceback for a request body cut by ``kill -9``: expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ClientDisconnect)


@contextmanager
def serve(emu: Emulator) -> Iterator[tuple[str, Journal]]:
    """Serve ``emu`` over real HTTP on 127.0.0.1 with a :class:`Journal`; yield (url, journal)."""
    inner = emu.app
    journal = Journal(inner)
    emu.app = journal  # type: ignore[assignment]  # serve() hands self.app to uvicorn
    quiet = _QuietDisconnects()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        with emu.serve(host="127.0.0.1", port=0) as base_url:
            yield base_url, journal
    finally:
        emu.app = inner
        logging.getLogger("uvicorn.error").removeFilter(quiet)


# --- the source table ------------------------------------------------------------------------


def email_of(i: int) -> str:
    """The identifier of source row ``i`` (stable: identifiers never change in these runs)."""
    return f"r{i}@{DOMAIN}"


def key_of(email: str) -> str:
    """The source key of the row holding ``email``."""
    return email.split("@", 1)[0].removeprefix("r")


def _tags_text(rng: random.Random) -> str | None:
    chosen = sorted(rng.sample(TAGS, rng.randint(0, 3)))
    return ",".join(chosen) if chosen else None


def initial_rows(rng: random.Random, n: int, start: int = 1) -> dict[int, Row]:
    """``n`` fresh contacts with random names, tags and e-mail status."""
    return {
        i: (
            i,
            email_of(i),
            f"First{i}-{rng.randint(0, 999)}",
            _tags_text(rng),
            rng.choice(STATUSES),
        )
        for i in range(start, start + n)
    }


@dataclass
class Mix:
    """How many changes of each kind one mutation made (disjoint sets of rows)."""

    creates: int = 0
    updates: int = 0
    tag_changes: int = 0
    archives: int = 0

    @property
    def total(self) -> int:
        """Changed rows in all."""
        return self.creates + self.updates + self.tag_changes + self.archives

    def as_dict(self) -> dict[str, int]:
        """Plain form for reports."""
        return {
            "creates": self.creates,
            "updates": self.updates,
            "tag_changes": self.tag_changes,
            "archives": self.archives,
        }


def mutate(
    rows: dict[int, Row], rng: random.Random, changes: int, next_id: int
) -> tuple[dict[int, Row], Mix, set[str]]:
    """A changed copy of ``rows``: ``changes`` rows created, updated, re-tagged or deleted.

    Shares: 30 % creates, 30 % scalar updates (name and status), 25 % tag changes (at least
    one tag added or removed), 15 % deletions. Returns (rows, mix, e-mails deleted).
    """
    out = dict(rows)
    existing = sorted(rows)
    n_archive = min(len(existing) // 4, round(changes * 0.15))
    n_tags = min(len(existing) // 4, round(changes * 0.25))
    n_update = min(len(existing) // 4, round(changes * 0.30))
    n_create = changes - n_archive - n_tags - n_update
    picked = rng.sample(existing, n_archive + n_tags + n_update)
    deleted: set[str] = set()
    for i in picked[:n_archive]:
        deleted.add(out.pop(i)[1])
    for i in picked[n_archive : n_archive + n_tags]:
        row = out[i]
        current = set(row[3].split(",")) if row[3] else set()
        flip = rng.choice(TAGS)
        new = current ^ {flip}
        if rng.random() < 0.5:  # sometimes add and remove in one change
            other = rng.choice([t for t in TAGS if t != flip])
            new ^= {other}
        out[i] = (row[0], row[1], row[2], ",".join(sorted(new)) or None, row[4])
    for i in picked[n_archive + n_tags :]:
        row = out[i]
        status = rng.choice([s for s in STATUSES if s != row[4]])
        out[i] = (row[0], row[1], f"Changed{i}-{rng.randint(0, 99_999)}", row[3], status)
    out.update(initial_rows(rng, n_create, start=next_id))
    return out, Mix(n_create, n_update, n_tags, n_archive), deleted


def write_rows(engine: Engine, rows: Mapping[int, Row], table: str = TABLE) -> None:
    """Replace the source table's content with ``rows`` in one transaction."""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, email TEXT NOT NULL,"
                " first_name TEXT, tags TEXT, status TEXT)"
            )
        )
        conn.execute(text(f"DELETE FROM {table}"))
        if rows:
            conn.execute(
                text(f"INSERT INTO {table} VALUES (:id, :email, :first, :tags, :status)"),
                [
                    dict(zip(("id", "email", "first", "tags", "status"), r, strict=True))
                    for r in rows.values()
                ],
            )


def sync_spec(table: str = TABLE, **overrides: Any) -> dict[str, Any]:
    """The sync under test: contacts by e-mail, upsert, tags in managed mode, archives on."""
    return {
        "name": SYNC,
        "object": CONTACTS,
        "source": {"table": table, "primary_key": ["id"]},
        "identity": {"match_on": "email"},
        "mode": "upsert",
        "delete": {"archive": True, "max_archive_fraction": 0.5},
        "fields": [
            {"column": "email", "field": "email"},
            {"column": "first_name", "field": "first_name"},
            {"column": "tags", "field": "tags", "format": "delimited"},
            {"column": "status", "field": "email_status"},
        ],
    } | overrides


def project_dict(
    url: str, base_url: str, emu: Emulator, *, max_in_flight: int = 8, **kizen: Any
) -> dict[str, Any]:
    """A whole sync file (as data) for ``url`` and the emulator at ``base_url``."""
    _, user_id, business_id = emu.credentials
    return {
        "warehouse": {"url": url},
        "kizen": {
            "base_url": base_url,
            "user_id": user_id,
            "business_id": business_id,
            "max_in_flight": max_in_flight,
            **kizen,
        },
        "syncs": [sync_spec()],
    }


# --- checking Kizen against the warehouse -----------------------------------------------------


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


# --- fault runs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultScenario:
    """One kind of fault: emulator knobs plus client settings that make it bite."""

    name: str
    knobs: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)


SCENARIOS: dict[str, FaultScenario] = {
    s.name: s
    for s in (
        FaultScenario("5xx", {"error_rate": 0.10}),
        FaultScenario("429-storm", {"rate_limit_rps": 40}),
        FaultScenario(
            "slow", {"slow_rate": 0.05, "slow_ms": 600}, {"timeout_s": 0.2, "connect_timeout_s": 1}
        ),
        FaultScenario("drops", {"drop_rate": 0.05}),
        # Few attempts against many errors: records fail in-run and the next run must
        # pick them up (the schedule's automatic retry), without duplicating anything.
        FaultScenario("5xx-next-run", {"error_rate": 0.20}, {"max_attempts": 2}),
        FaultScenario(
            "mixed",
            {"error_rate": 0.05, "drop_rate": 0.02, "slow_rate": 0.02, "slow_ms": 600},
            {"timeout_s": 0.2, "connect_timeout_s": 1},
        ),
    )
}

#: Client settings for fault runs: short backoffs keep runs quick; Retry-After (1 s) honoured.
FAULT_SETTINGS: dict[str, Any] = {
    "backoff_base_s": 0.02,
    "backoff_max_s": 0.5,
    "max_retry_after_s": 2.0,
    "retry_budget_s": 30.0,
    "timeout_s": 2.0,
}


@dataclass
class FaultResult:
    """Figures of one seeded fault run (several rounds of changes, each verified)."""

    scenario: str
    seed: int
    warehouse: str
    records: int
    rounds: int
    changes: int = 0
    runs: int = 0
    next_run_retries: int = 0
    requests: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    retry_rows: int = 0
    verdicts: list[Verdict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        """Records whose Kizen values differ from the source after the last run of a round."""
        return sum(len(v.lost) + len(v.missing) + len(v.not_archived) for v in self.verdicts)

    @property
    def duplicated(self) -> int:
        """Identifiers held by more than one record (archived ones included)."""
        return sum(len(v.duplicated) for v in self.verdicts)

    @property
    def audit_problems(self) -> int:
        """Breaks of the one-terminal-outcome rule."""
        return sum(len(v.audit) for v in self.verdicts)

    @property
    def retry_after_honoured(self) -> bool:
        """At most about one 429 per worker (8) per second: a client that retried on its own
        backoff instead of waiting Retry-After (1 s) meets many more.
        """
        return self.faults["throttled"] <= 8 * (self.seconds + 1)

    @property
    def ok(self) -> bool:
        """Every round converged with a consistent audit, and Retry-After was honoured."""
        return all(v.ok for v in self.verdicts) and self.retry_after_honoured


def fault_run(
    scenario: FaultScenario,
    *,
    seed: int,
    records: int,
    rounds: int = 2,
    warehouse_url: str,
    state_schema: str | None = None,
    max_next_runs: int = 10,
) -> FaultResult:
    """Sync ``records`` rows, then ``rounds - 1`` rounds of mixed changes, under ``scenario``.

    After each run that left failures, the next run is started automatically (at most
    ``max_next_runs`` times, faults still on): that is what the schedule would do. Then the
    faults are switched off and Kizen is compared with the warehouse.
    """
    rng = random.Random(seed)
    result = FaultResult(
        scenario.name, seed, warehouse_url.split(":", 1)[0].split("+")[0], records, rounds
    )
    started = time.monotonic()
    emu = Emulator.demo()
    warehouse = Warehouse(warehouse_url, state_schema=state_schema)
    source_table = f"{state_schema}.{TABLE}" if state_schema else TABLE
    try:
        with serve(emu) as (base_url, _journal):
            data = project_dict(warehouse_url, base_url, emu)
            data["syncs"] = [sync_spec(table=source_table)]
            project = parse_config(data)
            key, user, business = emu.credentials
            settings = ClientSettings(
                base_url=base_url,
                api_key=key,
                user_id=user,
                business_id=business,
                max_in_flight=8,
                **(FAULT_SETTINGS | scenario.settings),
            )
            runner = SyncRunner(project, client_settings=settings, warehouse=warehouse)
            store = runner.store
            rows = initial_rows(rng, records)
            deleted: set[str] = set()
            next_id = records + 1
            completed: set[str] = set()
            for round_no in range(rounds):
                if round_no:
                    rows, mix, gone = mutate(rows, rng, max(4, records // 2), next_id)
                    deleted |= gone
                    next_id += mix.creates
                    result.changes += mix.total
                else:
                    result.changes += len(rows)
                _write_source(warehouse, rows, source_table)
                emu.set_knobs(**scenario.knobs, seed=seed * 1000 + round_no)
                for attempt in range(1 + max_next_runs):
                    report = None
                    try:
                        report = runner.run(SYNC)
                    except KizenSyncError:
                        pass  # a fatal stop is retried by the next run like any failure
                    result.runs += 1
                    if report is not None:
                        result.requests += report.requests
                        completed.add(report.run_id)
                    if report is not None and not runner.open_failures(SYNC):
                        break
                    if attempt < max_next_runs:
                        result.next_run_retries += 1
                result.faults.update(emu.request_log.faults())
                emu.request_log.reset()
                emu.set_knobs(error_rate=0.0, drop_rate=0.0, slow_rate=0.0, rate_limit_rps=None)
                verdict = compare(emu, project.syncs[0], rows, deleted)
                verdict.audit = audit_problems(store, SYNC, completed)
                result.verdicts.append(verdict)
            result.retry_rows = sum(
                1 for r in store.audit_rows(sync=SYNC) if r["outcome"] == "retry"
            )
    finally:
        warehouse.dispose()
        emu.close()
    result.seconds = time.monotonic() - started
    return result


def _write_source(warehouse: Warehouse, rows: Mapping[int, Row], table: str) -> None:
    write_rows(warehouse.engine, rows, table)


# --- kill -9 loop -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """When to kill one run: after ``value`` writes reached Kizen, or ``value`` seconds."""

    kind: str  # "writes" | "seconds"
    value: float

    def __str__(self) -> str:
        return f"{self.value:g} writes" if self.kind == "writes" else f"{self.value:.2f} s"


def kill_points(seed: int, crashes: int, changes: int) -> list[KillPoint]:
    """Seeded kill moments in three regimes, so that every crash point of the design is hit.

    - one in four after a delay of 0.5-5 s from process start: on this machine start-up
      takes about 3 s, so these land in imports, planning or the first writes;
    - six in ten after a small number of writes (1 up to ``0.7 * changes / crashes``),
      usually before the first batch of results was committed;
    - the rest (about one in seven) after a large number of writes (one to two flush
      batches), when some batches are committed and the re-sends are bounded by the window.

    Kills that confirm batches consume the change run; the mix keeps enough work for every
    kill to land in a running sync.
    """
    rng = random.Random(seed)
    small = max(4, int(0.7 * changes / max(1, crashes)))
    low, high = min(FLUSH_EVERY, int(0.4 * changes)), min(2 * FLUSH_EVERY + 50, int(0.6 * changes))
    points = []
    for _ in range(crashes):
        draw = rng.random()
        if draw < 0.25:
            points.append(KillPoint("seconds", round(rng.uniform(0.5, 5.0), 2)))
        elif draw < 0.85:
            points.append(KillPoint("writes", rng.randint(1, small)))
        else:
            points.append(KillPoint("writes", rng.randint(low, max(low, high))))
    return points


@dataclass
class CrashRecord:
    """One kill and what the run after it had to send again."""

    index: int
    point: KillPoint
    writes_before_kill: int
    applied: int
    confirmed: int
    resent: int
    confirmed_resent: int
    unconfirmed_not_resent: int
    killed: bool
    exit_code: int | None = None


@dataclass
class CrashLoopResult:
    """Figures of one ``kill -9`` loop over a single change run."""

    seed: int
    base_rows: int
    mix: Mix
    max_in_flight: int
    latency_ms: float
    crashes: list[CrashRecord] = field(default_factory=list)
    final_exit: int | None = None
    verdict: Verdict = field(default_factory=Verdict)
    seconds: float = 0.0
    writes_total: int = 0

    @property
    def bound(self) -> int:
        """Re-sends one crash may cost: requests in flight plus the results not yet committed,
        i.e. the batch being written and the one filling up (each up to ``FLUSH_EVERY``).
        """
        return self.max_in_flight + 2 * FLUSH_EVERY

    @property
    def resent(self) -> list[int]:
        """Records re-sent per crash."""
        return [c.resent for c in self.crashes if c.killed]

    def resent_stats(self) -> tuple[int, float, int]:
        """(min, median, max) of :attr:`resent` (zeros when there were no crashes)."""
        values = self.resent
        if not values:
            return (0, 0.0, 0)
        return (min(values), float(statistics.median(values)), max(values))

    @property
    def ok(self) -> bool:
        """Converged, nothing confirmed re-sent, nothing applied-unconfirmed left behind."""
        return (
            self.final_exit == 0
            and self.verdict.ok
            and all(c.confirmed_resent == 0 and c.unconfirmed_not_resent == 0 for c in self.crashes)
            and all(r <= self.bound for r in self.resent)
        )


def cli_command() -> list[str]:
    """The ``kizen-sync`` console script of this interpreter (or the module behind it)."""
    script = Path(sys.executable).with_name("kizen-sync")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from kizen_sync.cli import main; main()"]


def _wait_until(proc: subprocess.Popen[bytes], done: Callable[[], bool], timeout_s: float) -> bool:
    """Poll every 2 ms until ``done()`` (True) or the process exits / times out (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def crash_loop(
    workdir: Path,
    *,
    seed: int,
    base_rows: int,
    changes: int,
    crashes: int,
    max_in_flight: int = 8,
    latency_ms: float = 5.0,
    segment_timeout_s: float = 60.0,
    final_timeout_s: float = 180.0,
) -> CrashLoopResult:
    """One change run of ``changes`` changes, killed ``crashes`` times, then run to the end.

    The warehouse holds ``base_rows`` contacts synced beforehand (in-process); the source is
    then changed (creates, updates, tag add/remove, deletions) and the CLI ``kizen-sync run``
    is started in a subprocess, killed with SIGKILL at a seeded moment, started again, and so
    on; a last run goes to the end. Re-sends per crash come from the emulator's write journal
    (records a killed run got applied) and the audit table (those it had confirmed).
    """
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "warehouse.db"
    db.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    started = time.monotonic()
    emu = Emulator.demo()
    engine = create_engine(url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with serve(emu) as (base_url, journal):
            config = workdir / "syncs.yaml"
            data = project_dict(url, base_url, emu, max_in_flight=max_in_flight)
            config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            project: ProjectConfig = parse_config(data)
            key, user, business = emu.credentials
            settings = ClientSettings(
                base_url=base_url, api_key=key, user_id=user, business_id=business
            )
            rows = initial_rows(rng, base_rows)
            write_rows(engine, rows)
            with SyncRunner(project, client_settings=settings) as runner:
                report = runner.run(SYNC)
                if report.status != "success":
                    raise RuntimeError(f"the initial sync failed: {report.message}")
            rows, mix, deleted = mutate(rows, rng, changes, base_rows + 1)
            write_rows(engine, rows)
            emu.set_knobs(latency_ms=latency_ms)
            result = CrashLoopResult(seed, base_rows, mix, max_in_flight, latency_ms)
            env = {**os.environ, "KIZEN_API_KEY": key, "COLUMNS": "120"}
            env.pop("KIZEN_BASE_URL", None)
            segments: list[tuple[int, int, datetime, datetime, bool]] = []
            points = kill_points(seed, crashes, changes)
            exits: list[int | None] = []

            def start_run(log: IO[bytes]) -> subprocess.Popen[bytes]:
                """``kizen-sync run`` in its own process, output to ``log``."""
                proc = subprocess.Popen(
                    [*cli_command(), "run", "--config", str(config)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                procs.append(proc)
                return proc

            for number, point in enumerate(points):
                begin, wall_begin = len(journal), datetime.now(UTC)
                with (workdir / f"run{number:02d}.log").open("wb") as log:
                    proc = start_run(log)
                    t0 = time.monotonic()
                    if point.kind == "writes":
                        due = _wait_until(
                            proc,
                            lambda b=begin, v=point.value: len(journal) - b >= v,
                            segment_timeout_s,
                        )
                    else:
                        due = _wait_until(
                            proc,
                            lambda t=t0, v=point.value: time.monotonic() - t >= v,
                            segment_timeout_s,
                        )
                    killed = due and proc.poll() is None
                    _reap(proc)
                end = len(journal)
                segments.append((begin, end, wall_begin, datetime.now(UTC), killed))
                exits.append(proc.returncode)
                if not killed:
                    break  # the run ended before its kill moment (no work left, or it failed)
            final_begin, wall_begin = len(journal), datetime.now(UTC)
            with (workdir / "final.log").open("wb") as log:
                proc = start_run(log)
                try:
                    result.final_exit = proc.wait(timeout=final_timeout_s)
                finally:
                    _reap(proc)
            segments.append((final_begin, len(journal), wall_begin, datetime.now(UTC), False))
            result.writes_total = len(journal)
            emu.set_knobs(latency_ms=0)
            result.crashes = _analyse(journal, emu, url, segments, points)
            for crash, code in zip(result.crashes, exits, strict=True):
                crash.exit_code = code
            result.verdict = compare(emu, project.syncs[0], rows, deleted)
            with Warehouse(url) as warehouse:
                store = StateStore(warehouse)
                finished = {
                    s["run_id"]
                    for s in store.run_summaries(SYNC, limit=None)
                    if s["status"] in ("success", "failed")
                }
                result.verdict.audit = audit_problems(store, SYNC, finished)
                result.verdict.audit += _one_success_per_change(store, segments)
    finally:
        for proc in procs:
            _reap(proc)
        engine.dispose()
        emu.close()
    result.seconds = time.monotonic() - started
    return result


def _analyse(
    journal: Journal,
    emu: Emulator,
    url: str,
    segments: list[tuple[int, int, datetime, datetime, bool]],
    points: list[KillPoint],
) -> list[CrashRecord]:
    """Per killed segment: applied writes, confirmed records, and what later runs re-sent."""
    email_by_id = {}
    for record in emu.records(CONTACTS, include_archived=True):
        for f in record["fields"].values():
            if f["name"] == "email" and f.get("value"):
                email_by_id[record["id"].lower()] = str(f["value"]).lower()

    def records_of(entries: list[JournalEntry], applied_only: bool) -> set[str]:
        out = set()
        for e in entries:
            if applied_only and not e.applied:
                continue
            email = (e.identifier or "").lower() or email_by_id.get(e.record_id or "", "")
            if email:
                out.add(email)
        return out

    with Warehouse(url) as warehouse:
        store = StateStore(warehouse)
        summaries = store.run_summaries(SYNC, limit=None)
        audit = store.audit_rows(sync=SYNC)
    crashes = []
    for index, (begin, end, wall_begin, wall_end, killed) in enumerate(segments[:-1]):
        runs = {s["run_id"] for s in summaries if wall_begin <= _aware(s["started_at"]) <= wall_end}
        confirmed = {
            email_of(int(r["source_key"]))
            for r in audit
            if r["run_id"] in runs and r["outcome"] == "success"
        }
        applied = records_of(journal.entries(begin, end), applied_only=True)
        later = records_of(journal.entries(end), applied_only=False)
        unconfirmed = applied - confirmed
        crashes.append(
            CrashRecord(
                index=index,
                point=points[index],
                writes_before_kill=end - begin,
                applied=len(applied),
                confirmed=len(confirmed),
                resent=len(applied & later),
                confirmed_resent=len(confirmed & later),
                unconfirmed_not_resent=len(unconfirmed - later),
                killed=killed,
            )
        )
    return crashes


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _one_success_per_change(
    store: StateStore, segments: list[tuple[int, int, datetime, datetime, bool]]
) -> list[str]:
    """Across the whole killed-and-resumed change run, each record succeeded exactly once."""
    first = segments[0][2]
    successes: Counter[str] = Counter(
        r["source_key"]
        for r in store.audit_rows(sync=SYNC)
        if r["outcome"] == "success" and _aware(r["finished_at"]) >= first
    )
    return [f"key {k}: {n} successes" for k, n in successes.items() if n > 1]
