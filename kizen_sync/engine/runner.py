"""SyncRunner: plan, guard, run, retry and inspect syncs (what the CLI and Dagster call).

One run of one sync goes through fixed stages, each able to stop it before Kizen is touched::

    key-only SQL counts ─▶ mass-archive guard ─▶ Kizen schema check ─▶ plan (pure) ─▶
        reject-rate guard ─▶ apply (async executor) ─▶ state + audit per record ─▶ run row

The guards run *before the first write*: a half-loaded source must never wipe the CRM, and a
mapping broken for most rows must not send the few that happen to pass. The plan is built
once; when it is small (the usual incremental run) it is kept in memory and applied as is,
otherwise the changes are streamed from the warehouse a second time for the apply.

The guards need only the number of records that would be archived and the number synced:
:meth:`ChangeDetector.archive_counts` answers from keys alone, so the expensive fingerprint
scan runs once per run (the change stream of the plan), and ``unchanged`` is derived from the
archive counts and the stream (:class:`~kizen_sync.warehouse.ChangeTally`). Only a run cut
short by ``max_records`` still asks :meth:`ChangeDetector.counts` for ``unchanged``.

Kizen is read only when the first change reaches the planner (:class:`_Kizen`): a run where
nothing changed sends no request at all, not even the schema read. The price is that such a
run cannot notice a field renamed in Kizen; the next run with something to send checks the
sync against the schema before its first write, as always.

Everything is sync-callable (``asyncio.run`` inside); ``arun`` is the coroutine for callers
that already have an event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.config import ProjectConfig, SyncConfig, load_config
from kizen_sync.engine.budget import ApplyBudget
from kizen_sync.engine.executor import ApplySummary, Executor
from kizen_sync.engine.guards import (
    GuardReport,
    guard_report,
    is_mapping_reject,
    raise_for_archive,
    raise_for_rejects,
)
from kizen_sync.engine.parking import KnownFailures, parked_note
from kizen_sync.engine.planner import plan_row
from kizen_sync.engine.references import References
from kizen_sync.engine.resolve import Resolver
from kizen_sync.engine.verify import VerifyPolicy
from kizen_sync.errors import GuardError
from kizen_sync.mapping.labels import value_labels
from kizen_sync.models import (
    ChangedRow,
    ChangeKind,
    Operation,
    Outcome,
    PlannedOp,
    RecordResult,
    RunCounts,
    RunOptions,
    RunReport,
)
from kizen_sync.preflight.kizen import prepare_sync
from kizen_sync.schema import ObjectSchema
from kizen_sync.warehouse import (
    ArchiveCounts,
    ChangeDetector,
    ChangeTally,
    FailureListing,
    Source,
    StateStore,
    Warehouse,
)
from kizen_sync.warehouse.integrity import StateIntegrity, way_out
from kizen_sync.warehouse.lease import Lease, Leases
from kizen_sync.warehouse.unreadable import UnreadableRows

__all__ = ["SyncRunner", "client_settings_from_config"]

logger = logging.getLogger("kizen_sync.runner")

#: Plans up to this many ops are kept in memory between the guard and the apply.
PLAN_IN_MEMORY = 20_000
#: Ops kept for display by a dry run.
PLAN_SAMPLE = 50
#: Changed rows fetched from the warehouse per round trip.
CHUNK_SIZE = 1000
#: Read-after-write verification of a sync until one of its runs succeeded: the first 10
#: records written and 5 % of the rest (one GET each).
FIRST_RUN_VERIFY = VerifyPolicy(rate=0.05, first=10, reason="no run of this sync succeeded yet")

Progress = Callable[[str, int, int], None]


@dataclass
class _Plan:
    """The outcome of one planning pass over the changed rows."""

    ops: list[PlannedOp] | None = field(default_factory=list)  # None: too many, re-stream
    by_op: dict[Operation, int] = field(default_factory=lambda: dict.fromkeys(Operation, 0))
    rejects: list[PlannedOp] = field(default_factory=list)  # first few new ones, for messages
    known_rejects: int = 0  # rejects that are not news (KnownFailures.known_reject)
    refused: int = 0  # failures of a record's identity or state, not of its values
    known_failed: int = 0  # failed results that are not news (KnownFailures.known_failure)
    sample: list[PlannedOp] = field(default_factory=list)
    tally: ChangeTally = field(default_factory=ChangeTally)  # the streamed rows, by kind
    watch: Collection[str] = ()  # open failures to look out for in the stream
    seen: set[str] = field(default_factory=set)  # ... and those the stream did contain
    rekeyed: int = 0  # rows back under a new key: updates, not archive + create

    @property
    def planned(self) -> int:
        """Ops that write (or wanted to write): everything but NOOP state refreshes, and
        but the archives of re-keyed rows, which the resolve stage drops (their record lives
        on under the new key). Counted, they inflated the base of ``failure_threshold`` and
        of the reject-rate guard (a re-keyed table of 100 rows made 10 failures of 10
        writes read as 10 of 110).
        """
        writes = sum(n for op, n in self.by_op.items() if op is not Operation.NOOP)
        return writes - self.rekeyed

    @property
    def total(self) -> int:
        return sum(self.by_op.values())

    @property
    def new_rejects(self) -> int:
        """Rejected rows the reject-rate guard judges: only the new or changed ones whose
        values cannot be mapped (:func:`~kizen_sync.engine.guards.is_mapping_reject`).
        """
        return self.by_op[Operation.FAIL] - self.known_rejects - self.refused


@dataclass
class _Kizen:
    """Kizen's side of one call, read on first need.

    The schema (and dynamic-tag ids) are fetched when the planner meets the first change, so
    that a run with nothing to send makes zero requests. Planning runs on a worker thread;
    :meth:`prepared` hands the fetch to the event loop that owns the client and waits for it.
    """

    runner: SyncRunner
    client: KizenClient
    scope: _Scope
    loop: asyncio.AbstractEventLoop
    schema: ObjectSchema | None = None
    refs: References = field(default_factory=References)

    @property
    def tags(self) -> dict[str, dict[str, str]]:
        """Dynamic tags by field API name, label -> id (placeholders for tags to create)."""
        return self.refs.tags

    def prepared(self) -> tuple[ObjectSchema, dict[str, dict[str, str]]]:
        """Schema and tag ids, fetched once (call from a worker thread, never the loop's)."""
        if self.schema is None:
            future = asyncio.run_coroutine_threadsafe(
                self.runner._prepare(self.client, self.scope), self.loop
            )
            self.schema, self.refs.tags = future.result()
        return self.schema, self.refs.tags

    def look_up(self, rows: list[dict[str, Any]]) -> None:
        """Related records and missing tags named in ``rows`` (from a worker thread)."""
        schema, _ = self.prepared()
        future = asyncio.run_coroutine_threadsafe(
            self.refs.prepare(self.client, schema, self.scope.sync, rows), self.loop
        )
        future.result()

    def labels(self) -> dict[str, dict[str, str]]:
        """Option and tag labels for display; empty when Kizen was never read."""
        return value_labels(self.schema, self.tags) if self.schema is not None else {}


@dataclass
class _Scope:
    """One sync with its warehouse-side helpers, resolved once per call."""

    sync: SyncConfig
    index: int
    detector: ChangeDetector
    only_keys: set[str] | None
    known: KnownFailures = field(default_factory=KnownFailures)
    skip_parked: bool = True  # parked rows are skipped unless asked for
    #: deleted rows whose archive failed for good (parked): skipped like parked rows
    parked_archives: frozenset[str] = frozenset()
    #: deletions that are not news for the mass-archive guard: the parked archives, or
    #: every key a retry was asked to re-send
    known_archives: frozenset[str] = frozenset()
    resolver: Resolver | None = None  # re-keys and collisions (engine/resolve.py)


def client_settings_from_config(config: ProjectConfig, **overrides: Any) -> ClientSettings:
    """Client settings from the file's ``kizen`` section and the environment
    (:meth:`~kizen_sync.config.KizenConfig.client_settings`).

    Raises:
        ConfigError: a credential is missing, naming the variable to set.
    """
    return config.kizen.client_settings(**overrides)


def _now() -> datetime:
    return datetime.now(UTC)


def _parked_archive(change: ChangedRow, parked: frozenset[str]) -> ChangedRow:
    """A deleted row whose archive is parked comes out of the stream as PARKED (not planned,
    counted with the parked rows); any other change as it is.
    """
    if change.kind is ChangeKind.DELETED and change.source_key in parked:
        return replace(change, kind=ChangeKind.PARKED)
    return change


class SyncRunner:
    """Runs the syncs of one project file.

    Args:
        config: the validated project file.
        client_settings: Kizen connection; default from ``config.kizen`` and the environment
            (resolved only when Kizen is needed, so ``open_failures`` works without a key).
        transport: httpx transport for tests (``httpx.ASGITransport(app=emulator.app)``).
        warehouse: an existing warehouse; default one built from ``config.warehouse``.
        progress: called ``(sync_name, done, total)`` after each applied record.
        log: logger for run summaries and per-record debug lines.
        config_path: the sync file this config was read from, named in the commands that
            messages suggest (``kizen-sync failures --config ...``).
    """

    def __init__(
        self,
        config: ProjectConfig,
        *,
        client_settings: ClientSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        warehouse: Warehouse | None = None,
        progress: Progress | None = None,
        log: logging.Logger | None = None,
        config_path: str | Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self._settings = client_settings
        self.transport = transport
        self._owns_warehouse = warehouse is None
        self.warehouse = warehouse or Warehouse.from_config(config.warehouse)
        self.store = StateStore(self.warehouse)
        self.leases = Leases(self.warehouse.state_warehouse, self.store.tables)
        self.progress = progress
        self.log = log or logger
        self._schema_ready = False

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> SyncRunner:
        """A runner for the sync file at ``path`` (ConfigError names every bad key)."""
        return cls(load_config(path), config_path=path, **kwargs)

    def __enter__(self) -> SyncRunner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the warehouse connections when this runner created them."""
        if self._owns_warehouse:
            self.warehouse.dispose()

    @property
    def _config_option(self) -> str:
        """`` --config <file>`` for commands shown to people, when the file is known."""
        return f" --config {self.config_path}" if self.config_path else ""

    @property
    def client_settings(self) -> ClientSettings:
        """Kizen connection settings (ConfigError when a credential is missing)."""
        if self._settings is None:
            self._settings = client_settings_from_config(self.config)
        return self._settings

    # --- public API ---------------------------------------------------------------------

    def plan(self, sync_name: str, options: RunOptions | None = None) -> RunReport:
        """Dry run: what ``run`` would send, field by field. Writes nothing anywhere."""
        return asyncio.run(self.aplan(sync_name, options))

    def check_guards(self, sync_name: str, options: RunOptions | None = None) -> GuardReport:
        """The mass-archive and reject-rate guards, computed without any write."""
        return asyncio.run(self.acheck_guards(sync_name, options))

    def run(self, sync_name: str, options: RunOptions | None = None) -> RunReport:
        """Plan, guard and apply one sync; see :meth:`arun`."""
        return asyncio.run(self.arun(sync_name, options))

    def retry(self, sync_name: str) -> RunReport:
        """Re-send only the records whose last outcome was a failure."""
        return self.run(sync_name, RunOptions(only_failed=True))

    def open_failures(
        self, sync: str | None = None, limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """Records whose latest outcome is a failure, newest first."""
        self._ensure_schema()
        return self.store.open_failures(sync=sync, limit=limit)

    def failure_listing(self, sync: str | None = None, **filters: Any) -> FailureListing:
        """Open failures with true totals (parked / retrying) and their groups by reason;
        ``filters`` as :meth:`~kizen_sync.warehouse.failures.Failures.listing`.
        """
        self._ensure_schema()
        return self.store.failures.listing(sync, **filters)

    def run_summaries(self, sync: str | None = None) -> list[dict[str, Any]]:
        """Recent runs with their counts and status."""
        self._ensure_schema()
        return self.store.run_summaries(sync=sync)

    async def aplan(self, sync_name: str, options: RunOptions | None = None) -> RunReport:
        """Coroutine of :meth:`plan`."""
        options = options or RunOptions(dry_run=True)
        started = _now()
        scope = self._scope(sync_name, options)
        self.store.require_tables()  # writes nothing: a dropped table is named, not created
        archive = self._archive_counts(scope, options)
        self._attach_resolver(scope, options, archive, dry_run=True)
        async with self._client() as client:
            kizen = self._kizen(client, scope)
            plan = await asyncio.to_thread(self._plan, scope, kizen, options, True)
            by_op, sample = await asyncio.to_thread(self._resolved, scope, kizen, options, plan)
            requests = client.stats.requests
        self._log_plan(scope.sync, archive, plan, requests)
        unchanged = self._unchanged(scope, options, archive, plan)
        guard = self._guard_report(scope.sync, archive, plan)
        report = RunReport(
            run_id=options.run_id or uuid.uuid4().hex,
            sync=sync_name,
            partition_key=options.partition.key if options.partition else None,
            status="dry_run",
            counts=RunCounts(
                created=by_op[Operation.CREATE],
                updated=by_op[Operation.UPDATE],
                archived=by_op[Operation.ARCHIVE],
                unchanged=unchanged,
                noop=by_op[Operation.NOOP],
                failed=by_op[Operation.FAIL],
            ),
            started_at=started,
            finished_at=_now(),
            planned=sum(n for op, n in by_op.items() if op is not Operation.NOOP),
            requests=requests,
            plan_sample=sample,
            labels=kizen.labels(),
            would_archive=guard.would_archive,
            message=guard.message,
        )
        self._note_parked(report, plan)
        return report

    async def acheck_guards(self, sync_name: str, options: RunOptions | None = None) -> GuardReport:
        """Coroutine of :meth:`check_guards`."""
        options = options or RunOptions()
        scope = self._scope(sync_name, options)
        self.store.require_tables()
        archive = self._archive_counts(scope, options)
        self._attach_resolver(scope, options, archive, dry_run=True)
        async with self._client() as client:
            plan = await asyncio.to_thread(
                self._plan, scope, self._kizen(client, scope), options, False
            )
        return self._guard_report(scope.sync, archive, plan)

    async def arun(self, sync_name: str, options: RunOptions | None = None) -> RunReport:
        """Run one sync under its lease: guards first, then apply; state is written per
        confirmed record.

        Raises:
            ConfigError: the sync does not fit Kizen's schema, or a credential is missing.
            GuardError: a guard stopped the run; nothing was sent.
            LeaseHeldError: another run holds the sync (this one sent nothing).
            FatalError: Kizen refused the credentials mid-run (confirmed records are kept).
        """
        options = options or RunOptions()
        if options.dry_run:
            return await self.aplan(sync_name, options)
        self.config.sync(sync_name)  # an unknown name is a ConfigError, not a lease
        self._ensure_schema(verify=True)  # a table dropped since is created again
        options = replace(options, run_id=options.run_id or uuid.uuid4().hex)
        lease_config = self.config.warehouse.lease
        wait_s = options.lease_wait_s if options.lease_wait_s is not None else lease_config.wait_s
        lease = await asyncio.to_thread(
            self.leases.acquire,
            sync_name,
            options.run_id or "",
            wait_s=wait_s,
            ttl_s=lease_config.ttl_s,
        )
        try:
            return await self._arun(sync_name, options, lease)
        finally:
            await asyncio.to_thread(lease.release)

    async def _arun(self, sync_name: str, options: RunOptions, lease: Lease) -> RunReport:
        """:meth:`arun` once the lease is held: nothing here may run without it."""
        started = _now()
        run_id = options.run_id or uuid.uuid4().hex
        partition_key = options.partition.key if options.partition else None
        scope = self._scope(sync_name, options)
        sync = scope.sync
        self.log.debug("sync %s: run %s holds the sync's lease", sync.name, run_id)
        archive = self._archive_counts(scope, options)
        resolver = self._attach_resolver(scope, options, archive)
        if not resolver.leaving:  # else re-keys may explain the deletions: judged after the plan
            with self._recorded_stop(run_id, sync, partition_key, started):
                raise_for_archive(sync, archive.new, archive.synced)
        # Open failures this run may find resolved (see _resolve_failures); a partition or a
        # capped run sees only part of the source and cannot tell.
        watch: Collection[str] = ()
        if options.partition is None and options.max_records is None:
            watch = scope.only_keys if scope.only_keys is not None else self.store.failed_keys(sync)
        async with self._client() as client:
            kizen = self._kizen(client, scope)
            plan = await asyncio.to_thread(self._plan, scope, kizen, options, True, watch)
            self._log_plan(sync, archive, plan, client.stats.requests)
            with self._recorded_stop(run_id, sync, partition_key, started, client, plan.planned):
                raise_for_archive(sync, archive.new - plan.rekeyed, archive.synced)
                raise_for_rejects(sync, plan.new_rejects, plan.planned, plan.rejects)
            if kizen.schema is not None and await kizen.refs.create_pending(client, kizen.schema):
                plan.ops = None  # planned with placeholder tag ids: plan again with the real ones
            unchanged = self._unchanged(scope, options, archive, plan)
            self.store.start_run(run_id, sync.name, partition_key, started_at=started)
            report = RunReport(
                run_id=run_id,
                sync=sync.name,
                partition_key=partition_key,
                status="failed",
                counts=RunCounts(unchanged=unchanged),
                started_at=started,
                finished_at=started,
                planned=plan.planned,
                would_archive=plan.by_op[Operation.ARCHIVE] - plan.rekeyed,
            )
            try:
                summary = await self._apply(kizen, options, plan, run_id, lease, archive)
            except BaseException as exc:
                report.finished_at = _now()
                report.requests = client.stats.requests
                report.message = f"stopped: {exc}"
                self.store.finish_run(report)
                raise
            report.requests = client.stats.requests
        self._resolve_failures(sync, plan, run_id)
        summary.counts.unchanged = unchanged
        report.counts = summary.counts
        report.failures = summary.failures
        report.known_failed = plan.known_failed
        self._note_parked(report, plan)
        report.finished_at = _now()
        rate = report.failure_rate
        if rate > sync.failure_threshold:
            report.status = "failed"
            report.message = (
                f"{report.new_failures} of {report.planned} records failed ({rate:.0%}), more "
                f"than failure_threshold {sync.failure_threshold:.0%}; "
                f"see `kizen-sync failures{self._config_option} --sync {sync.name}`"
            )
        else:
            report.status = "success"
        self.store.finish_run(report)
        self.log.info(
            "sync %s %s: %s, %d requests in %.1fs",
            sync.name,
            report.status,
            ", ".join(f"{k} {v}" for k, v in report.counts.as_dict().items()),
            report.requests,
            (report.finished_at - started).total_seconds(),
        )
        if report.parked:
            self.log.info(
                "sync %s: %s",
                sync.name,
                parked_note(sync.name, report.parked, report.parked_since, self.config_path),
            )
        return report

    # --- stages -------------------------------------------------------------------------

    def _ensure_schema(self, *, verify: bool = False) -> None:
        if verify or not self._schema_ready:
            self.store.ensure_schema(verify=verify)
            self._schema_ready = True

    def _scope(self, sync_name: str, options: RunOptions) -> _Scope:
        sync = self.config.sync(sync_name)
        index = self.config.syncs.index(sync)
        self._ensure_schema()
        source = Source(self.warehouse, sync)
        detector = ChangeDetector(self.warehouse, sync, source)
        only_keys = self.store.failed_keys(sync.name) if options.only_failed else None
        resend = options.only_failed or options.include_parked
        archives = self.store.failures.archive_keys(sync.name)
        known = KnownFailures(
            parked=self.store.failures.fingerprints(sync.name, only_keys) if resend else {},
            asked=frozenset(only_keys or ()),
            classes=self.store.failures.error_classes(sync.name),
        )
        return _Scope(
            sync=sync,
            index=index,
            detector=detector,
            only_keys=only_keys,
            known=known,
            skip_parked=not resend,
            parked_archives=frozenset() if resend else archives,
            known_archives=frozenset(only_keys) if only_keys is not None else archives,
        )

    def _client(self) -> KizenClient:
        return KizenClient(self.client_settings, transport=self.transport)

    def _kizen(self, client: KizenClient, scope: _Scope) -> _Kizen:
        return _Kizen(self, client, scope, asyncio.get_running_loop())

    async def _prepare(
        self, client: KizenClient, scope: _Scope
    ) -> tuple[ObjectSchema, dict[str, dict[str, str]]]:
        """The cheap part of ``kizen-sync check``, before the first write: Kizen reachable,
        credentials accepted, the object and every mapped field fit the sync, dynamic tags
        listed. These are the reads the plan needs anyway, so they cost no extra request;
        a problem stops the run with the fix ``check`` would print.
        """
        return await prepare_sync(client, scope.index, scope.sync)

    def _verify_policy(self, sync: SyncConfig) -> VerifyPolicy:
        """``verify:`` of the sync file; without it, a sample until a run of the sync has
        succeeded (a new account's unverified wire shapes show on the first run).
        """
        if sync.verify is not None:
            return VerifyPolicy(rate=sync.verify.effective_rate, reason="the sync file")
        if not self.store.has_succeeded(sync.name):
            return FIRST_RUN_VERIFY
        return VerifyPolicy()

    def _iter_ops(
        self,
        scope: _Scope,
        kizen: _Kizen,
        options: RunOptions,
        tally: ChangeTally | None = None,
        parked: set[str] | None = None,
    ) -> Iterator[PlannedOp]:
        """Plan the changed rows in warehouse order, stopping at ``max_records`` writes.

        NOOP state refreshes are free and do not count against the cap. ``tally`` counts the
        streamed rows and is marked complete only when the stream was read to its end.
        Parked rows are not planned (nor is Kizen read for them); their keys go to ``parked``.
        """
        writes = 0
        for chunk in scope.detector.iter_changes(
            options.partition,
            full_refresh=options.full_refresh,
            only_keys=scope.only_keys,
            chunk_size=CHUNK_SIZE,
            skip_parked=scope.skip_parked,
        ):
            if scope.parked_archives:
                chunk = [_parked_archive(c, scope.parked_archives) for c in chunk]
            rows = [c.row for c in chunk if c.row is not None and c.kind is not ChangeKind.PARKED]
            if rows:
                kizen.look_up(rows)
            ops = self._plan_chunk(scope, kizen, options, chunk)
            for change in chunk:
                if options.max_records is not None and writes >= options.max_records:
                    return
                if tally is not None:
                    tally.add(change)
                if change.kind is ChangeKind.PARKED:
                    if parked is not None:
                        parked.add(change.source_key)
                    continue
                op = ops[id(change)]
                if options.full_refresh and _same_fingerprint(change):
                    if op.op is Operation.NOOP and not op.forgets_state:
                        # Compared field by field and equal to what Kizen confirmed: the row
                        # is unchanged (tallied so), with nothing to send or to record.
                        continue
                    if tally is not None:
                        tally.rewritten += 1
                writes += op.op is not Operation.NOOP
                yield op
        if tally is not None:
            tally.complete = True

    @staticmethod
    def _plan_chunk(
        scope: _Scope, kizen: _Kizen, options: RunOptions, chunk: list[ChangedRow]
    ) -> dict[int, PlannedOp]:
        """Plan one chunk's rows (parked ones are not planned), by ``id`` of the change.

        The whole chunk at once: the resolve stage re-plans a re-key as an update of the
        record it keeps. Kizen is read only when a row is planned at all.
        """
        live = [change for change in chunk if change.kind is not ChangeKind.PARKED]
        if not live:
            return {}
        schema, tags = kizen.prepared()
        plan_one = partial(
            plan_row,
            sync=scope.sync,
            schema=schema,
            full_refresh=options.full_refresh,
            tags=tags,
            related=kizen.refs.related,
        )
        if scope.resolver is not None:
            ops = scope.resolver.plan_chunk(live, plan_one)
        else:
            ops = [plan_one(change) for change in live]
        return {id(change): op for change, op in zip(live, ops, strict=True)}

    def _plan(
        self,
        scope: _Scope,
        kizen: _Kizen,
        options: RunOptions,
        keep: bool,
        watch: Collection[str] = (),
    ) -> _Plan:
        """One planning pass: counts per operation, rejected samples, and (when ``keep`` and
        small enough) the ops themselves for the apply. Keys of ``watch`` met in the stream
        are noted in ``seen``.

        A pass that meets rows the warehouse cannot hand over (bytes that are not UTF-8,
        :mod:`kizen_sync.warehouse.unreadable`) starts again without them: they come out as
        failed records at the end of the stream. Planning sends nothing, so starting again
        is free of side effects.
        """
        while True:
            try:
                return self._plan_pass(scope, kizen, options, keep, watch)
            except UnreadableRows as found:
                self.log.warning("%s", found.message)
                if scope.resolver is not None:
                    scope.resolver.restart()

    def _plan_pass(
        self,
        scope: _Scope,
        kizen: _Kizen,
        options: RunOptions,
        keep: bool,
        watch: Collection[str],
    ) -> _Plan:
        plan = _Plan(ops=[] if keep else None, watch=watch)
        parked: set[str] = set()
        resolver = scope.resolver
        damaged = resolver.refused_keys if resolver is not None else set()
        damaged_seen: set[str] = set()
        for op in self._iter_ops(scope, kizen, options, plan.tally, parked):
            if resolver is not None:
                resolver.observe(op)
            plan.rekeyed += op.replaces_key is not None
            if op.source_key in watch:
                plan.seen.add(op.source_key)
            if op.source_key in damaged:
                damaged_seen.add(op.source_key)
            plan.by_op[op.op] += 1
            if scope.known.known_reject(op):
                plan.known_rejects += 1
            elif op.op is Operation.FAIL and not is_mapping_reject(op):
                plan.refused += 1
            elif op.op is Operation.FAIL and len(plan.rejects) < 3:
                plan.rejects.append(op)
            if op.op is not Operation.NOOP and len(plan.sample) < PLAN_SAMPLE:
                plan.sample.append(op)
            if plan.ops is not None:
                plan.ops.append(op)
                if len(plan.ops) > PLAN_IN_MEMORY:
                    plan.ops = None
        plan.seen.update(parked.intersection(watch))
        # Rows whose state shares a Kizen id with another row's fail even when they did not
        # change (the resolve stage adds them at the end): they are part of what is planned.
        unstreamed = len(damaged - damaged_seen)
        plan.by_op[Operation.FAIL] += unstreamed
        plan.refused += unstreamed
        if resolver is not None:
            resolver.finish()
            plan.seen |= resolver.refused_keys & set(watch)  # failed again by the apply
        return plan

    def _resolved(
        self, scope: _Scope, kizen: _Kizen, options: RunOptions, plan: _Plan
    ) -> tuple[dict[Operation, int], list[PlannedOp]]:
        """What a dry run shows: the plan's ops as the apply would send them, through the
        resolve stage (engine/resolve.py), counted per operation with a sample.

        The planning pass alone showed a re-keyed row's old key as an archive of the record
        the run keeps, colliding rows as creates and a row whose state holds another row's
        record as an update of that record, none of which a run sends. A plan too large to
        keep is read from the warehouse a second time, as the apply would.
        """
        resolver = scope.resolver
        if resolver is None:
            return plan.by_op, plan.sample
        ops: Iterable[PlannedOp] = (
            plan.ops if plan.ops is not None else self._iter_ops(scope, kizen, options)
        )
        by_op = dict.fromkeys(Operation, 0)
        sample: list[PlannedOp] = []
        for op in resolver.resolve(ops):
            by_op[op.op] += 1
            if op.op is not Operation.NOOP and len(sample) < PLAN_SAMPLE:
                sample.append(op)
        return by_op, sample

    def _resolve_failures(self, sync: SyncConfig, plan: _Plan, run_id: str) -> None:
        """Close open failures that no longer need a write.

        A complete run streams every row that needs a write. An open failure it did not meet
        was fixed without leaving a change behind (the row was put back to what Kizen last
        confirmed) or its row left the source before it was ever synced: either way nothing
        is left to send, and the failure gets a ``resolve`` audit row that closes it.
        """
        if not plan.tally.complete or not plan.watch:
            return
        resolved = self.store.resolve_failures(run_id, sync, set(plan.watch) - plan.seen)
        if resolved:
            self.log.info(
                "sync %s: %d open failure(s) need no write any more and were closed",
                sync.name,
                resolved,
            )

    def _log_plan(self, sync: SyncConfig, archive: ArchiveCounts, plan: _Plan, reads: int) -> None:
        """One DEBUG line per plan (``-v``): what the diff found and what will be sent."""
        if not self.log.isEnabledFor(logging.DEBUG):
            return
        tally = plan.tally
        self.log.debug(
            "sync %s: diff found %d new, %d changed, %d deleted of %d synced (%d known); "
            "%d parked rows skipped; plan: %s (%d new rejects); %d requests to plan",
            sync.name,
            tally.new,
            tally.changed + tally.restored,
            archive.deleted,
            archive.synced,
            archive.known,
            tally.parked,
            ", ".join(f"{op.value} {n}" for op, n in plan.by_op.items()),
            plan.new_rejects,
            reads,
        )

    def _note_parked(self, report: RunReport, plan: _Plan) -> None:
        """How many parked rows this pass skipped, and since when the oldest is parked."""
        report.parked = plan.tally.parked
        if report.parked:
            report.parked_since = self.store.failures.summary(report.sync).oldest

    def _attach_resolver(
        self, scope: _Scope, options: RunOptions, archive: ArchiveCounts, *, dry_run: bool = False
    ) -> Resolver:
        """The resolve stage of this call (engine/resolve.py), with what it needs to know
        of the state: rows leaving (re-key candidates) and Kizen ids held twice (damage).
        A real run first fills ``identity`` on state rows that predate it.
        """
        sync = scope.sync
        integrity = StateIntegrity(self.warehouse, self.store.tables, sync)
        leaving: dict[str, list[tuple[str, str | None]]] = {}
        if sync.identity.match_on is not None:
            if not dry_run:
                integrity.backfill_identities()
            if archive.deleted:
                leaving = scope.detector.deleted_identities(options.partition, scope.only_keys)
        scope.resolver = Resolver(
            sync,
            integrity,
            leaving=leaving,
            shared_ids=integrity.shared_ids(),
            way_out=partial(way_out, self.store.tables, sync),
        )
        return scope.resolver

    @contextmanager
    def _recorded_stop(
        self,
        run_id: str,
        sync: SyncConfig,
        partition_key: str | None,
        started: datetime,
        client: KizenClient | None = None,
        planned: int = 0,
    ) -> Iterator[None]:
        """A guard that stops the run before its first write still leaves the run's row
        (``failed``, "stopped: ..."), so that a scheduled run a guard stopped shows in
        ``run_summary`` beside the others, as one stopped during the apply does.
        """
        try:
            yield
        except GuardError as exc:
            self.store.finish_run(
                RunReport(
                    run_id=run_id,
                    sync=sync.name,
                    partition_key=partition_key,
                    status="failed",
                    counts=RunCounts(),
                    started_at=started,
                    finished_at=_now(),
                    planned=planned,
                    requests=client.stats.requests if client is not None else 0,
                    message=f"stopped: {exc}",
                )
            )
            raise

    @staticmethod
    def _archive_counts(scope: _Scope, options: RunOptions) -> ArchiveCounts:
        """The guard's key-only counts (no fingerprint scan; see the module docstring).

        Deletions whose archive failed for good before are not this run's news: a normal run
        leaves them out of ``deleted`` (they are not planned, they are parked); a run asked
        to send them again (``retry``, ``--include-parked``) counts them as ``known``.
        """
        counts = scope.detector.archive_counts(options.partition, only_keys=scope.only_keys)
        if not scope.known_archives or not counts.deleted:
            return counts
        known = scope.detector.archive_counts(options.partition, only_keys=scope.known_archives)
        if scope.skip_parked:
            return replace(counts, deleted=counts.deleted - known.deleted)
        return replace(counts, known=known.deleted)

    @staticmethod
    def _unchanged(scope: _Scope, options: RunOptions, archive: ArchiveCounts, plan: _Plan) -> int:
        """Unchanged records in scope: from the planning pass when it read the whole stream,
        else (``max_records`` cut it short) from a full :meth:`ChangeDetector.counts`.
        """
        if plan.tally.complete:
            return plan.tally.unchanged(archive)
        return scope.detector.counts(options.partition, only_keys=scope.only_keys).unchanged

    @staticmethod
    def _guard_report(sync: SyncConfig, counts: ArchiveCounts, plan: _Plan) -> GuardReport:
        return guard_report(
            sync,
            deleted=counts.new - plan.rekeyed,
            synced=counts.synced,
            rejects=plan.new_rejects,
            planned=plan.planned,
            examples=plan.rejects,
        )

    async def _apply(
        self,
        kizen: _Kizen,
        options: RunOptions,
        plan: _Plan,
        run_id: str,
        lease: Lease,
        archive: ArchiveCounts,
    ) -> ApplySummary:
        schema = kizen.schema
        if schema is None:  # nothing reached the planner: nothing to send
            return ApplySummary()
        scope = kizen.scope
        sync = scope.sync
        partition_key = options.partition.key if options.partition else None
        # Plans and errors name fields by API name; the file may give a field id.
        sensitive = sync.sensitive_field_keys(schema)
        hash_text = os.environ.get(self.config.kizen.audit_hash_key_env)
        hash_key = hash_text.encode("utf-8") if hash_text else None

        def sink(results: list[RecordResult]) -> None:
            plan.known_failed += sum(
                1 for r in results if r.outcome is Outcome.FAILED and scope.known.known_failure(r)
            )
            self.store.record_results(
                run_id,
                sync.name,
                partition_key,
                results,
                sensitive_fields=sensitive,
                hash_key=hash_key,
                fence=lease.fence,
            )

        def progress(done: int, total: int) -> None:
            if self.progress is not None:
                self.progress(sync.name, done, total)

        verify = self._verify_policy(sync)
        if verify.active:
            self.log.info(
                "sync %s: reading back the first %d and %.0f%% of written records (%s)",
                sync.name,
                verify.first,
                verify.rate * 100,
                verify.reason,
            )
        executor = Executor(
            kizen.client,
            schema,
            sink,
            sync=sync,
            progress=progress,
            log=self.log,
            before_send=lease.check,
            verify=verify,
        )
        # Whatever pass produced them, archives and rejects count against the guards' budget
        # as they go to the executor (engine/budget.py).
        budget = ApplyBudget(
            sync, synced=archive.synced, planned=plan.planned, known=scope.known.is_known
        )
        resolve = scope.resolver.resolve if scope.resolver is not None else iter
        ops: Iterator[PlannedOp] | AsyncIterator[PlannedOp]
        if plan.ops is not None:
            ops = budget.admit_all(resolve(plan.ops))
        else:
            # The source is read again: a reload since the plan must not reach Kizen.
            again = self._archive_counts(scope, options)
            raise_for_archive(sync, again.new - plan.rekeyed, again.synced, reread=True)
            stream = resolve(self._iter_ops(scope, kizen, options))
            ops = budget.admit_async(_in_thread(stream))
        return await executor.apply(ops, total=plan.total)


def _same_fingerprint(change: ChangedRow) -> bool:
    """A live confirmed row whose fingerprint did not move (a full refresh streams those too)."""
    state = change.state
    return (
        change.kind is ChangeKind.CHANGED
        and state is not None
        and not state.archived
        and state.fingerprint is not None
        and state.fingerprint == change.fingerprint
    )


async def _in_thread(iterator: Iterator[PlannedOp], batch: int = 256) -> AsyncIterator[PlannedOp]:
    """Drain a blocking iterator (warehouse cursor + planning) on one dedicated thread.

    One thread, always the same, because database cursors must not hop between threads.
    """
    loop = asyncio.get_running_loop()

    def take() -> list[PlannedOp]:
        out: list[PlannedOp] = []
        for op in iterator:
            out.append(op)
            if len(out) >= batch:
                break
        return out

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kizen-sync-source") as pool:
        try:
            while items := await loop.run_in_executor(pool, take):
                for op in items:
                    yield op
        finally:
            await loop.run_in_executor(pool, getattr(iterator, "close", lambda: None))
