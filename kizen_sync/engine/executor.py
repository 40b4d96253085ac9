"""Async apply: planned ops -> Kizen requests -> per-record results -> state/audit flushes.

A bounded pool of worker tasks (one per request the client may have in flight) pulls
:class:`~kizen_sync.models.PlannedOp` values from a queue and turns each into at most a few
requests. Every op ends in exactly one :class:`~kizen_sync.models.RecordResult`, success or
failure: one record's problem never stops the others. Only a :class:`~kizen_sync.errors.FatalError`
(401/403) stops the run, because nothing after it can succeed.

Results go to a single flusher task that hands them to the state store in batches, in a
worker thread, so the event loop keeps sending while the warehouse commits. A crash therefore
loses at most the requests in flight plus one unflushed batch; their state rows were never
written, so the next run's diff finds them again and re-sends them, which is harmless because
every write sets absolute values and creates go through upsert by identifier.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kizen_sync import mapping
from kizen_sync.client import KizenClient, capture_attempts
from kizen_sync.client.attempts import AttemptInfo
from kizen_sync.config import FieldMapping, SyncConfig
from kizen_sync.engine import planner
from kizen_sync.engine.verify import VerifyPolicy, verify_written
from kizen_sync.errors import (
    FatalError,
    KizenValidationError,
    MappingError,
    NotAppliedError,
    NotFoundError,
    SkippableError,
)
from kizen_sync.models import (
    AttemptRecord,
    Operation,
    Outcome,
    PlannedOp,
    RecordResult,
    RunCounts,
)
from kizen_sync.schema import ObjectSchema

__all__ = ["ApplySummary", "Executor", "ResultSink", "failure_row"]

logger = logging.getLogger("kizen_sync.engine")

#: Persists one batch of results (the runner binds ``StateStore.record_results``). Called in a
#: worker thread, never concurrently with itself.
ResultSink = Callable[[list[RecordResult]], None]

#: How many failed records a summary keeps for display.
FAILURE_SAMPLE = 20


class _Failed(Exception):
    """A record failed for a reason the executor names itself (not a request's own error)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class ApplySummary:
    """What one :meth:`Executor.apply` did.

    Attributes:
        counts: created / updated / archived / noop / failed (``unchanged`` stays 0: the
            executor never sees unchanged rows).
        done: results produced (and flushed).
        failures: up to :data:`FAILURE_SAMPLE` failed records as display rows.
    """

    counts: RunCounts = field(default_factory=RunCounts)
    done: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)


def failure_row(result: RecordResult) -> dict[str, Any]:
    """A failed record as a display row: source key, Kizen id, error class and messages."""
    last = result.attempts[-1] if result.attempts else None
    if last is not None:
        error = {
            "error_class": last.error_class,
            "message": last.error_message,
            "field_errors": last.field_errors or {},
        }
    else:
        error = {"field_errors": {}, **_error_fields(result.op.error)}
        error["message"] = error.pop("error_message", None)
    return {
        "source_key": result.op.source_key,
        "kizen_id": result.kizen_id,
        "operation": result.op.op.value,
        **error,
    }


def _now() -> datetime:
    return datetime.now(UTC)


def _error_fields(error: BaseException | None) -> dict[str, Any]:
    """The audit columns describing ``error`` (class, message, per-field messages)."""
    if error is None:
        return {}
    fields: dict[str, Any] = {
        "error_class": type(error).__name__,
        "error_message": str(error) or type(error).__name__,
    }
    if isinstance(error, KizenValidationError | MappingError | NotAppliedError):
        # One message list per field: Kizen's own for a 400, every collected problem of a
        # row the planner rejected (not only the first one the message starts with).
        fields["field_errors"] = error.messages_by_field() or None
    return fields


def _attempt_records(
    infos: Sequence[AttemptInfo],
    outcome: Outcome,
    error: BaseException | None,
    started: datetime,
    op_error: BaseException | None = None,
) -> tuple[AttemptRecord, ...]:
    """Turn captured HTTP attempts into audit rows, numbered 1..n across the whole op.

    Every attempt but the last is ``RETRY`` (a retried failure, or a step such as the lookup
    before a PATCH); the last carries the record's outcome and, on failure, the error that
    ended it, so the monitoring views see exactly one terminal row per record and run. An op
    that sent nothing has no attempts when its error is the planner's (the store then
    describes ``op.error`` itself, withholding sensitive values), else one row numbered 0.
    """
    if not infos and (outcome is Outcome.SUCCESS or error is op_error):
        return ()
    records = [
        AttemptRecord(
            attempt=number,
            outcome=Outcome.RETRY,
            started_at=info.started_at,
            finished_at=info.finished_at,
            http_status=info.status,
            **_error_fields(info.error),
        )
        for number, info in enumerate(infos[:-1], start=1)
    ]
    last = infos[-1] if infos else None
    final_error: BaseException | None = None
    if outcome is Outcome.FAILED:
        final_error = error if error is not None else (last.error if last else None)
    records.append(
        AttemptRecord(
            attempt=len(infos),
            outcome=outcome,
            started_at=last.started_at if last else started,
            finished_at=last.finished_at if last else _now(),
            http_status=last.status if last else None,
            **_error_fields(final_error),
        )
    )
    return tuple(records)


class Executor:
    """Applies planned ops for one sync through one :class:`~kizen_sync.client.KizenClient`.

    Args:
        client: an entered client; its ``max_in_flight`` sizes the worker pool by default.
        schema: the target object's schema (field ids for mirror reads).
        sink: persists result batches (state + audit); runs in a thread.
        sync: the sync whose plan is applied: mirror entries then address each field the way
            its mapping does (name or field UUID, like the planner's entries) and errors name
            the source column. Without it fields are addressed by API name.
        concurrency: worker tasks; default ``client.settings.max_in_flight``.
        flush_every: results per batch handed to ``sink``.
        flush_interval_s: longest time a result waits before it is flushed.
        progress: called with ``(done, total)`` after each result.
        log: logger for per-record debug lines.
        before_send: called before each op's first request; raising a
            :class:`~kizen_sync.errors.FatalError` stops the run (the runner's lease check:
            a run that lost its lease must not send).
        verify: which written records to read back and compare (:mod:`.verify`); a record
            Kizen accepted but does not hold as sent fails with ``NotAppliedError``.
    """

    def __init__(
        self,
        client: KizenClient,
        schema: ObjectSchema,
        sink: ResultSink,
        *,
        sync: SyncConfig | None = None,
        concurrency: int | None = None,
        flush_every: int = 200,
        flush_interval_s: float = 0.5,
        progress: Callable[[int, int], None] | None = None,
        log: logging.Logger | None = None,
        before_send: Callable[[], None] | None = None,
        verify: VerifyPolicy | None = None,
    ) -> None:
        self.client = client
        self.verify = verify or VerifyPolicy()
        self._first_to_verify = self.verify.first
        self.verified = 0
        self.schema = schema
        self.object = schema.name
        self.sink = sink
        self.sync = sync
        self._mappings = _mappings_by_name(sync, schema)
        self.concurrency = concurrency or client.settings.max_in_flight
        self.flush_every = flush_every
        self.flush_interval_s = flush_interval_s
        self.progress = progress
        self.log = log or logger
        self.before_send = before_send

    async def apply(
        self,
        ops: Iterable[PlannedOp] | AsyncIterable[PlannedOp],
        total: int = 0,
    ) -> ApplySummary:
        """Apply every op; return counts once all results are flushed.

        Args:
            ops: the planned ops, sync or async iterable (consumed lazily: a full queue holds
                the producer back).
            total: expected number of ops, for the progress callback only.

        Raises:
            FatalError: Kizen refused the credentials (or the sink failed); workers are
                cancelled and the results produced so far are flushed before it propagates.
        """
        summary = ApplySummary()
        queue: asyncio.Queue[PlannedOp | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        pending: list[RecordResult] = []
        wake = asyncio.Event()
        finished = asyncio.Event()

        async def feeder() -> None:
            if isinstance(ops, AsyncIterable):
                async for op in ops:
                    await queue.put(op)
            else:
                for op in ops:
                    await queue.put(op)
            for _ in range(self.concurrency):
                await queue.put(None)

        async def worker() -> None:
            while (op := await queue.get()) is not None:
                result, kind = await self._apply_one(op)
                self._count(summary, result, kind)
                pending.append(result)
                if len(pending) >= self.flush_every:
                    wake.set()
                if self.progress is not None:
                    self.progress(summary.done, max(total, summary.done))

        async def flusher() -> None:
            while True:
                try:
                    await asyncio.wait_for(wake.wait(), self.flush_interval_s)
                except TimeoutError:
                    pass
                wake.clear()
                if pending:
                    batch = pending[:]
                    del pending[:]
                    await asyncio.to_thread(self.sink, batch)
                if finished.is_set() and not pending:
                    return

        flush_task = asyncio.create_task(flusher())
        running = {asyncio.create_task(feeder())}
        running.update(asyncio.create_task(worker()) for _ in range(self.concurrency))
        try:
            while running:
                done, _ = await asyncio.wait(
                    running | {flush_task}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()  # re-raises a fatal error of a worker or of the sink
                running -= done
        except BaseException:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        finally:
            finished.set()
            wake.set()
            if not flush_task.done():
                await asyncio.shield(flush_task)
        return summary

    @staticmethod
    def _count(summary: ApplySummary, result: RecordResult, kind: str) -> None:
        summary.done += 1
        if result.outcome is Outcome.FAILED:
            summary.counts.failed += 1
            if len(summary.failures) < FAILURE_SAMPLE:
                summary.failures.append(failure_row(result))
            return
        counts = summary.counts
        setattr(counts, kind, getattr(counts, kind) + 1)

    async def _apply_one(self, op: PlannedOp) -> tuple[RecordResult, str]:
        """Apply one op; every error but a fatal one becomes a failed result.

        A read-after-write verification runs after the write's attempts were captured: it is
        not an attempt to write, so the audit keeps one row per write attempt, and a record
        Kizen accepted but does not hold fails on the attempt Kizen accepted.

        Returns:
            The result and the :class:`~kizen_sync.models.RunCounts` field it counts under.
        """
        started = _now()
        kizen_id = op.kizen_id
        if self.before_send is not None:
            self.before_send()
        error: Exception | None = None
        kind = "failed"
        with capture_attempts() as infos:
            try:
                kizen_id, kind = await self._send(op)
            except FatalError:
                raise
            except _Failed as failed:
                error = failed.error
            except Exception as exc:  # one record's failure never stops the others
                error = exc
        if error is None and kizen_id is not None and self._verifies(op, kind):
            error = await self._verify(op, kizen_id)
        if error is None:
            result = RecordResult(
                op=op,
                outcome=Outcome.SUCCESS,
                kizen_id=kizen_id,
                attempts=_attempt_records(list(infos), Outcome.SUCCESS, None, started),
                created=kind == "created",
            )
            return result, kind
        self.log.debug("record %s (%s) failed: %s", op.source_key, op.op.value, error)
        result = RecordResult(
            op=op,
            outcome=Outcome.FAILED,
            kizen_id=kizen_id,
            attempts=_attempt_records(list(infos), Outcome.FAILED, error, started, op.error),
        )
        return result, "failed"

    async def _verify(self, op: PlannedOp, kizen_id: str) -> Exception | None:
        """Read the record back; the error that fails it, or ``None`` when Kizen holds it.

        A read that fails fails the record too: verification was asked for and could not be
        done, and sending the (idempotent) write again next run is the safe side.
        """
        self.verified += 1
        try:
            await verify_written(self.client, self.schema, kizen_id, op)
        except FatalError:
            raise
        except Exception as exc:
            return exc
        return None

    async def _send(self, op: PlannedOp) -> tuple[str | None, str]:
        """Send the requests of one op; return the Kizen id and how the result counts."""
        if op.op is Operation.FAIL:
            raise _Failed(op.error or SkippableError("the planner rejected this row"))
        if op.op is Operation.NOOP:
            return op.kizen_id, "noop"
        if op.op is Operation.ARCHIVE:
            return await self._archive(op), "archived"
        if op.op is Operation.CREATE:
            return await self._create(op)
        return await self._update(op)

    def _verifies(self, op: PlannedOp, kind: str) -> bool:
        """Whether this written record is read back (:class:`VerifyPolicy`)."""
        if kind in ("noop", "archived", "failed") or not op.changes:
            return False
        if self._first_to_verify > 0:
            self._first_to_verify -= 1
            return True
        return self.verify.chosen(op.source_key)

    async def _create(self, op: PlannedOp) -> tuple[str, str]:
        """Upsert by identifier: idempotent, so a create whose outcome was lost never
        duplicates the record when the next run sends it again. An archived record holding
        the identifier is restored rather than refused: the source row says it should exist.
        """
        if not op.identifier:
            raise _Failed(SkippableError("no identifier (name/email) to create the record with"))
        result = await self.client.upsert_record(
            self.object, op.identifier, list(op.entries), oncreate_unarchive="unarchive"
        )
        return result.record.id, "created" if result.action == "created" else "updated"

    async def _archive(self, op: PlannedOp) -> str | None:
        """DELETE; a 404 means already archived (or gone), which is the wanted state."""
        if op.kizen_id is None:
            return None
        try:
            await self.client.archive_record(self.object, op.kizen_id)
        except NotFoundError:
            self.log.debug("record %s already archived in Kizen", op.kizen_id)
        return op.kizen_id

    async def _update(self, op: PlannedOp) -> tuple[str, str]:
        """Resolve the id if needed, restore if we archived it, diff mirror fields, PATCH.

        Counts as ``noop`` when nothing had to be written (mirror fields already equal).
        """
        kizen_id = op.kizen_id
        if op.needs_lookup or kizen_id is None:
            record = await self.client.lookup_record(self.object, op.identifier or "")
            if record is None:
                raise _Failed(
                    NotFoundError(
                        f"no Kizen record with {self.schema.identifier_field} {op.identifier!r}"
                    )
                )
            kizen_id = record.id
        if op.restore:
            await self._unarchive(kizen_id)
        entries = list(op.entries)
        if op.mirror:
            entries.extend(await self._mirror_entries(kizen_id, op.mirror))
        if not entries:
            return kizen_id, "updated" if op.restore else "noop"
        try:
            for batch in one_entry_per_field(entries):
                await self.client.patch_record(self.object, kizen_id, batch)
        except NotFoundError as exc:
            raise _Failed(
                NotFoundError(
                    f"Kizen record {kizen_id} was deleted or archived in Kizen (PATCH "
                    "answered 404); restore it in Kizen to sync this row again",
                    status=exc.status,
                    method=exc.method,
                    path=exc.path,
                    request_id=exc.request_id,
                )
            ) from exc
        return kizen_id, "updated"

    async def _unarchive(self, kizen_id: str) -> None:
        """Restore a record we archived. A refusal is not the end: the record may have been
        restored in Kizen meanwhile (400, the only other documented status) or be gone (404);
        the PATCH that follows then succeeds, or fails with a message that says which.
        """
        try:
            await self.client.unarchive_record(self.object, kizen_id)
        except (KizenValidationError, NotFoundError) as exc:
            self.log.debug("unarchive of %s refused (%s); sending the update anyway", kizen_id, exc)

    async def _mirror_entries(
        self, kizen_id: str, mirror: dict[str, tuple[str, ...]]
    ) -> list[dict[str, Any]]:
        """Entries that make each mirror field hold exactly the desired ids.

        Kizen's current values come from one GET of the record; a to-many relationship with
        more than 100 values is summarized there, so its values are paged separately.
        """
        record = await self.client.get_record(self.object, kizen_id, field_names=list(mirror))
        entries: list[dict[str, Any]] = []
        for name, desired in mirror.items():
            spec = self._mappings.get(name)
            field_schema = self.schema.field(name)
            if field_schema is None:
                raise _Failed(
                    MappingError(
                        column=spec.column if spec is not None else "(not mapped)",
                        field=name,
                        problem=f"object {self.object!r} has no field {name!r} any more "
                        "(its schema changed during the run?)",
                    )
                )
            current_field = record.field(name) or record.field(field_schema.id)
            if current_field is None:
                current: Iterable[str] = ()
            elif current_field.is_summarized:
                current = [
                    item.id
                    async for item in self.client.iter_field_values(kizen_id, field_schema.id)
                ]
            else:
                current = mapping.canonical_from_read(field_schema, current_field.value) or ()
            add, remove = planner.set_diff(desired, current)
            address = planner.field_address(spec, field_schema)
            if add:
                entries.append({**address, "add_values": list(add)})
            if remove:
                entries.append({**address, "remove_values": list(remove)})
        return entries


def one_entry_per_field(entries: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split entries into requests that each address a field at most once.

    No source shows two entries for one field in one request (``add_values`` then
    ``remove_values``), so a field that needs both gets them in two PATCHes, sent in order.
    Both are set operations, so repeating either after a retry or a crash is harmless.
    """
    batches: list[list[dict[str, Any]]] = []
    used: list[set[str]] = []
    for entry in entries:
        key = str(entry.get("id") or entry.get("name"))
        for batch, keys in zip(batches, used, strict=True):
            if key not in keys:
                batch.append(entry)
                keys.add(key)
                break
        else:
            batches.append([entry])
            used.append({key})
    return batches


def _mappings_by_name(sync: SyncConfig | None, schema: ObjectSchema) -> dict[str, FieldMapping]:
    """The sync's mappings by the API name the plan uses for their field.

    A mapping whose field the schema does not know is kept under its own spelling.
    """
    out: dict[str, FieldMapping] = {}
    for spec in sync.fields if sync is not None else ():
        target = schema.field(spec.field)
        out[target.name if target is not None else spec.field] = spec
    return out
