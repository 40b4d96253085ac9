"""Pure planner: one changed warehouse row -> one :class:`~kizen_sync.models.PlannedOp`.

The plan decides *what* to send; the executor only sends it. Decisions made here:

- **Only changed fields.** Each mapped column is coerced to its canonical value and compared
  with the values Kizen last confirmed (``StateRow.values``); only fields that differ become
  request entries. A row whose fingerprint moved for a formatting reason (``1.50`` -> ``1.5``)
  therefore plans a NOOP that refreshes the state without a request. NEW rows, restores and a
  changed record id send every field. ``full_refresh`` (backfills) compares every row, even
  one whose fingerprint did not move, field by field with what Kizen last confirmed, and sends
  only the fields that differ; its mirror-mode fields are compared with Kizen itself.
- **NULL** follows ``FieldMapping.null``: ``clear`` sends ``{"value": null}`` (for a managed
  multi-valued field: ``remove_values`` of everything we synced before), ``leave`` sends nothing
  and keeps the previous value in ``new_values``.
- **Multi-valued fields** in ``managed`` mode diff against what *we* last synced, so values
  people added in Kizen survive; in ``mirror`` mode the desired set goes to
  ``PlannedOp.mirror`` and the executor diffs it against Kizen's current values. A field with
  additions and removals becomes two entries for the same field (add, then remove).
- **Addressing.** Entries name fields as the mapping does (API name or field UUID), except
  that a contact is created with entries by field id: Kizen's platform notes saw name-keyed
  contact creates answer 403 for service accounts, while ids work (AE).
- **NULL into a field that refuses null** (``allows_nulls: false``) fails the row instead of
  sending ``{"value": null}`` Kizen would refuse.
- **Identity.** A ``record_id_column`` gives the id (a NULL creates by identifier in upsert
  mode); otherwise the id remembered in the state is used, and without one upsert mode
  creates and update mode asks the executor to look the record up by identifier.
- **Deleted rows** archive the record (``delete.archive``) or, with archiving off, plan a
  NOOP with empty ``new_values`` and no fingerprint: "forget this state row"
  (:attr:`~kizen_sync.models.PlannedOp.forgets_state`), leaving the Kizen record alone; the
  store deletes the state row once the op is recorded.
- **A damaged state row** (``StateRow.problem``) fails its record: nothing is routed
  through an id or values that cannot be trusted.
- **Every mapping problem of a row** is collected into one FAIL op, so one look at the
  failures list shows everything to fix. Problems of ``sensitive`` fields are withheld when
  they are made (coercion messages quote the value), so no reader of the error can leak it.
- **Values, not labels.** The plan holds canonical values (option and tag *ids*); labels
  are looked up only for display (:mod:`kizen_sync.mapping.labels`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kizen_sync import mapping
from kizen_sync.config import FieldMapping, SyncConfig
from kizen_sync.errors import MappingError, RowStateError
from kizen_sync.models import ChangedRow, ChangeKind, FieldChange, Operation, PlannedOp
from kizen_sync.schema import FieldSchema, ObjectSchema

__all__ = ["WITHHELD", "field_address", "plan_row", "set_diff"]

#: How a field is compared: ``create`` sends every non-null value as ``value``; ``all`` sends
#: every field (managed sets as add/remove); ``diff`` sends only what changed; ``refresh`` is
#: ``diff`` with every mirror-mode field handed to the executor, which reads Kizen's values.
_Mode = Literal["create", "all", "diff", "refresh"]


class _Missing:
    """The state holds no value for the field (it was mapped after the last sync)."""

    def __repr__(self) -> str:
        return "MISSING"


_MISSING = _Missing()

#: The problem text of a sensitive field's mapping error (coercion messages quote the value).
WITHHELD = "value rejected (details withheld: sensitive field)"


def set_diff(
    desired: Iterable[str], current: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What to add and what to remove to turn ``current`` into ``desired`` (both sorted)."""
    want, have = set(desired), set(current)
    return tuple(sorted(want - have)), tuple(sorted(have - want))


@dataclass(frozen=True)
class _Column:
    """One mapped column of the row, coerced."""

    spec: FieldMapping
    field: FieldSchema
    value: Any


@dataclass
class _Draft:
    """The op under construction."""

    by_id: bool = False  # address every entry by field id (contact creates)
    entries: list[dict[str, Any]] = field(default_factory=list)
    changes: list[FieldChange] = field(default_factory=list)
    new_values: dict[str, Any] = field(default_factory=dict)
    mirror: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def address(self, col: _Column) -> dict[str, str]:
        return field_address(col.spec, col.field, by_id=self.by_id)


def field_address(
    spec: FieldMapping | None, target: FieldSchema, *, by_id: bool = False
) -> dict[str, str]:
    """Address a field the way its mapping did: by API name or by field UUID.

    Shared with the executor's mirror entries so that every entry sent for one mapping
    addresses the field the same way (a mapping by UUID keeps working after a rename).
    Without a mapping the API name is used; ``by_id`` forces the field id (contact creates).
    """
    if by_id or (spec is not None and spec.field == target.id and spec.field != target.name):
        return {"id": target.id}
    return {"name": target.name}


def _coerce_row(
    row: Mapping[str, Any],
    sync: SyncConfig,
    schema: ObjectSchema,
    tags: Mapping[str, Mapping[str, str]],
    related: Mapping[str, Mapping[str, str]],
) -> tuple[list[_Column], list[MappingError]]:
    columns: list[_Column] = []
    errors: list[MappingError] = []
    for spec in sync.fields:
        target = schema.field(spec.field)
        if target is None:
            errors.append(
                MappingError(
                    column=spec.column,
                    field=spec.field,
                    problem=f"object {schema.name!r} has no field {spec.field!r}",
                )
            )
            continue
        if spec.column not in row:
            errors.append(
                MappingError(
                    column=spec.column,
                    field=target.name,
                    problem="the source row has no such column (check the source table/query)",
                )
            )
            continue
        try:
            value = mapping.coerce(
                target,
                spec,
                row[spec.column],
                tags=tags.get(target.name),
                related=related.get(target.name),
            )
        except MappingError as exc:
            errors.append(_withheld(exc) if spec.sensitive else exc)
            continue
        columns.append(_Column(spec, target, value))
    return columns, errors


def _withheld(error: MappingError) -> MappingError:
    """The error of a sensitive field without its problem text, which may quote the value.

    Done here, where the error is made, so that no later reader (guard messages, the CLI,
    Dagster metadata, the audit) can show the value.
    """
    return MappingError(column=error.column, field=error.field, problem=WITHHELD)


def _failed(change: ChangedRow, errors: list[MappingError], kizen_id: str | None) -> PlannedOp:
    """One FAIL op whose error is the first problem and whose message lists them all."""
    first = errors[0]
    error = first
    if len(errors) > 1:
        others = "; ".join(
            f"column {e.column!r} -> field {e.field!r}: {e.problem}" for e in errors[1:]
        )
        error = MappingError(
            column=first.column,
            field=first.field,
            problem=f"{first.problem}; and {len(errors) - 1} more: {others}",
            problems=tuple(errors),
        )
    return PlannedOp(
        op=Operation.FAIL,
        source_key=change.source_key,
        kizen_id=kizen_id,
        fingerprint=change.fingerprint,
        error=error,
    )


def _plan_scalar(draft: _Draft, col: _Column, old: Any, mode: _Mode) -> None:
    name, new = col.field.name, col.value
    before = None if old is _MISSING else old
    if new is None and col.spec.null == "leave":
        draft.new_values[name] = before
        return
    draft.new_values[name] = new
    compared = mode in ("diff", "refresh")
    if new is None:
        send = mode == "all" or (compared and old is not None)
    else:
        send = not compared or old != new
    if send:
        draft.entries.append({**draft.address(col), "value": mapping.to_wire(col.field, new)})
        draft.changes.append(FieldChange(field=name, before=before, after=new))


def _plan_multi(draft: _Draft, col: _Column, old: Any, mode: _Mode) -> None:
    name, new = col.field.name, col.value
    before = None if old is _MISSING else old
    last: list[str] = old if isinstance(old, list) else []
    if new is None and col.spec.null == "leave":
        draft.new_values[name] = before
        return
    draft.new_values[name] = new
    desired: list[str] = new or []
    if mode == "create":
        if desired:
            draft.entries.append(
                {**draft.address(col), "value": mapping.to_wire(col.field, desired)}
            )
            draft.changes.append(FieldChange(field=name, after=new, add=tuple(desired)))
        return
    if col.spec.multi_mode == "mirror":
        if mode in ("all", "refresh") or (old is _MISSING or (old or []) != desired):
            draft.mirror[name] = tuple(desired)
            draft.changes.append(FieldChange(field=name, before=before, after=new, mirror=True))
        return
    add, remove = set_diff(desired, last)
    if mode == "all":
        add = tuple(desired)
    if add:
        draft.entries.append({**draft.address(col), "add_values": list(add)})
    if remove:
        draft.entries.append({**draft.address(col), "remove_values": list(remove)})
    if add or remove:
        draft.changes.append(
            FieldChange(field=name, before=before, after=new, add=add, remove=remove)
        )


def _plan_fields(
    columns: list[_Column], previous: Mapping[str, Any], mode: _Mode, *, by_id: bool = False
) -> _Draft:
    draft = _Draft(by_id=by_id)
    for col in columns:
        old = previous.get(col.field.name, _MISSING)
        if col.field.is_multi_valued:
            _plan_multi(draft, col, old, mode)
        elif mode == "create" and col.value is None:
            draft.new_values[col.field.name] = None
        else:
            _plan_scalar(draft, col, old, mode)
    return draft


def _null_problems(columns: list[_Column]) -> list[MappingError]:
    """NULLs that would clear a field Kizen does not let hold null (``allows_nulls: false``)."""
    return [
        MappingError(
            column=col.spec.column,
            field=col.field.name,
            problem=f"NULL cannot clear {col.field.name}: Kizen does not accept null for it "
            "(allows_nulls is false); fill the column, or set null: leave",
        )
        for col in columns
        if col.value is None
        and col.spec.null == "clear"
        and not col.field.allows_nulls
        and not col.field.is_multi_valued
    ]


def _plan_delete(change: ChangedRow, sync: SyncConfig) -> PlannedOp:
    state = change.state
    kizen_id = state.kizen_id if state is not None else None
    if kizen_id is None or not sync.delete.archive:
        return PlannedOp(op=Operation.NOOP, source_key=change.source_key, kizen_id=kizen_id)
    return PlannedOp(
        op=Operation.ARCHIVE,
        source_key=change.source_key,
        kizen_id=kizen_id,
        new_values=dict(state.values) if state is not None else {},
    )


def _identity_problem(
    id_column: str | None, ident_spec: FieldMapping | None, identifier: Any, create: bool
) -> MappingError | None:
    """Why a row without a known Kizen id cannot be created or looked up, if it cannot."""
    if not create and id_column is not None:
        return MappingError(
            column=id_column,
            field="id",
            problem="no Kizen record id (the column is NULL); update mode never creates "
            "records (use mode: upsert to create them)",
        )
    if isinstance(identifier, str):
        return None
    # The config guarantees a match key whenever records may be created or looked up.
    column, name = (ident_spec.column, ident_spec.field) if ident_spec else ("?", "?")
    action = "created" if create else "looked up"
    return MappingError(
        column=column,
        field=name,
        problem=f"the identifier is NULL, so the record cannot be {action}",
    )


def plan_row(
    change: ChangedRow,
    sync: SyncConfig,
    schema: ObjectSchema,
    *,
    full_refresh: bool = False,
    tags: Mapping[str, Mapping[str, str]] | None = None,
    related: Mapping[str, Mapping[str, str]] | None = None,
) -> PlannedOp:
    """Plan what to send for one changed row.

    Args:
        change: the row as the warehouse diff found it, with its confirmed state.
        sync: the sync's mappings, identity, mode and delete policy.
        schema: the target object's schema (field types, options, ids).
        full_refresh: compare every field with the confirmed state even when the row's
            fingerprint did not move (mirror fields with Kizen itself); still only what
            differs is sent.
        tags: for dynamic-tag fields, field API name -> tag label -> tag id.
        related: for relationship fields, field API name -> identifier of a related record
            (name; e-mail for contacts) -> its id, as looked up for this run.

    Returns:
        The op; a FAIL op (never an exception) when a value cannot be mapped, with a
        :class:`~kizen_sync.errors.MappingError` as ``error``.
    """
    if change.problem:
        return PlannedOp(
            op=Operation.FAIL,
            source_key=change.source_key,
            kizen_id=change.state.kizen_id if change.state is not None else None,
            error=RowStateError(
                change.problem, source_key=change.source_key, column=change.problem_column
            ),
        )
    if change.state is not None and change.state.problem:
        # A damaged state row must not route a write (its id or values cannot be trusted).
        return PlannedOp(
            op=Operation.FAIL,
            source_key=change.source_key,
            kizen_id=change.state.kizen_id,
            fingerprint=change.fingerprint,
            error=RowStateError(
                change.state.problem, source_key=change.source_key, column="sync_state"
            ),
        )
    if change.kind is ChangeKind.DELETED:
        return _plan_delete(change, sync)
    row = change.row or {}
    state = change.state
    remembered = state.kizen_id if state is not None else None
    columns, errors = _coerce_row(row, sync, schema, tags or {}, related or {})
    kizen_id = remembered
    id_column = sync.identity.record_id_column
    if id_column is not None:
        try:
            kizen_id = mapping.record_id(id_column, row.get(id_column)) or remembered
        except MappingError as exc:
            errors.append(exc)
    ident_spec = sync.identifier_mapping
    identifier = next((c.value for c in columns if c.spec is ident_spec), None)
    create = kizen_id is None and sync.mode == "upsert"
    lookup = kizen_id is None and sync.mode == "update"
    if not errors and (create or lookup):
        problem = _identity_problem(id_column, ident_spec, identifier, create)
        if problem is not None:
            errors.append(problem)
    if not create:
        errors.extend(_null_problems(columns))
    if errors:
        return _failed(change, errors, kizen_id)
    restore = state is not None and state.archived and not create
    switched = remembered is not None and kizen_id != remembered
    send_all = change.kind is ChangeKind.NEW or state is None or restore or lookup
    mode: _Mode = (
        "create"
        if create
        else "all"
        if send_all or switched
        else "refresh"
        if full_refresh
        else "diff"
    )
    previous = state.values if state is not None and not switched else {}
    draft = _plan_fields(columns, previous, mode, by_id=create and schema.is_contacts)
    if create:
        op = Operation.CREATE
    elif draft.entries or draft.mirror or restore or lookup:
        op = Operation.UPDATE
    else:
        op = Operation.NOOP
    return PlannedOp(
        op=op,
        source_key=change.source_key,
        kizen_id=kizen_id,
        identifier=identifier if isinstance(identifier, str) else None,
        entries=tuple(draft.entries),
        changes=tuple(draft.changes),
        new_values=draft.new_values,
        fingerprint=change.fingerprint,
        mirror=draft.mirror,
        needs_lookup=lookup,
        restore=restore,
    )
