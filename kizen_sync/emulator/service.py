"""Record semantics of the emulator, independent of HTTP.

Identity rules, as the sources show them (``docs/architecture.md``, "Wire shapes"):

- ``lookup`` matches the identifier (``name``, contacts ``email``) exactly as written; the
  first live record holding it wins (AE: exact and case-sensitive).
- ``upsert`` matches case-insensitively (``__iexact``, no trimming), first match wins (AE).
- Names are not unique (Kizen's CLI: ``create`` duplicates rows); contact e-mails are
  (unique across contacts, compared case-insensitively).
- An archived record keeps its identifier: creating or renaming onto it is refused with a
  400 ``conflict`` (the statuses Kizen documents for add, upsert and PATCH are 200/201/400;
  no source shows a 409 there) unless the caller asks to ``unarchive`` it or to
  ``overwrite``, which renames the archived holder (``<name>_archived_<n>``, for e-mails
  ``<local>_archived_<n>@<domain>``).

Pipeline objects start every record in their first stage; the stage changes only through
:meth:`RecordService.move` (``PATCH .../move``), never through ``fields`` (AE, BC).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kizen_sync.emulator.business import Business, FieldDef, ObjectDef, TeamMember
from kizen_sync.emulator.store import Record, RecordStore
from kizen_sync.emulator.values import is_blank, render, render_datetime
from kizen_sync.emulator.writes import ApiError, Op, apply_ops, field_errors, parse_entries

__all__ = ["SUMMARY_THRESHOLD", "RecordService", "not_found", "now_iso"]

#: To-many relationships with more values than this are summarised in record responses.
SUMMARY_THRESHOLD = 100
_SYSTEM = ("created", "updated")
_CONTACT_SEARCH = (
    "email",
    "first_name",
    "last_name",
    "home_phone",
    "mobile_phone",
    "business_phone",
)


def now_iso() -> str:
    """Current time in UTC, as datetimes are stored (rendered in the business's zone)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def not_found() -> ApiError:
    """Kizen's 404 for a missing, archived or invisible resource."""
    return ApiError(404, {"detail": "Not found.", "code": "not_found"})


_NOT_DERIVED = object()


class RecordService:
    """Reads and writes records of a business held in a :class:`RecordStore`."""

    def __init__(self, business: Business, store: RecordStore) -> None:
        self.business = business
        self.store = store
        self.team: dict[str, TeamMember] = business.team
        self.files = business.files
        self.timezone = business.timezone
        #: Field API names whose writes are accepted and dropped (the ``ignored_fields`` knob).
        self.ignored_fields: frozenset[str] = frozenset()

    # --- Resolver protocol (used by values.py) ---------------------------------------------

    def live_record_exists(self, object_id: str, record_id: str) -> bool:
        """True when the record exists in that object and is not archived."""
        rec = self.store.by_id.get(record_id)
        return rec is not None and rec.object_id == object_id and not rec.archived

    def relation_shape(self, object_id: str, record_id: str) -> dict[str, Any] | None:
        """Read shape of a related record; archived or missing targets are left out."""
        rec = self.store.by_id.get(record_id)
        if rec is None or rec.archived:
            return None
        obj = self.business.by_ref[rec.object_id]
        if obj.is_contacts:
            return {"id": rec.id, **self._contact_names(obj, rec)}
        return {"id": rec.id, "name": self.display_name(obj, rec)}

    # --- lookups ------------------------------------------------------------------------------

    def object(self, ref: str) -> ObjectDef:
        """The object by API name or UUID, else 404."""
        obj = self.business.object(ref)
        if obj is None:
            raise not_found()
        return obj

    def live(self, obj: ObjectDef, record_id: str) -> Record:
        """A live record of the object, else 404 (archived records are not found)."""
        rec = self.store.by_id.get(record_id.lower())
        if rec is None or rec.object_id != obj.id or rec.archived:
            raise not_found()
        return rec

    def lookup(self, obj: ObjectDef, identifier: str) -> Record | None:
        """The first live record whose identifier is exactly ``identifier``."""
        holders = self.store.holders(obj.id, identifier, exact=True)
        return next((r for r in holders if not r.archived), None)

    def _contact_names(self, obj: ObjectDef, rec: Record) -> dict[str, str]:
        get = rec.values.get
        return {
            "first_name": get(obj.by_name["first_name"].id) or "",
            "last_name": get(obj.by_name["last_name"].id) or "",
            "email": get(obj.by_name["email"].id) or "",
        }

    def display_name(self, obj: ObjectDef, rec: Record) -> str:
        """Record label: the name, or for contacts "First Last" (falling back to the email)."""
        if obj.is_contacts:
            names = self._contact_names(obj, rec)
            full = f"{names['first_name']} {names['last_name']}".strip()
            return full or names["email"]
        return str(rec.values.get(obj.identifier.id) or "")

    # --- rendering ----------------------------------------------------------------------------

    def _derived(self, obj: ObjectDef, rec: Record, f: FieldDef) -> Any:
        """Values Kizen computes: system datetimes, the default ``display_name`` field
        (the live capture shows it equal to the name), the pipeline stage.
        """
        if f.name in _SYSTEM and f.spec.get("is_read_only"):
            return render_datetime(
                rec.created if f.name == "created" else rec.updated, self.timezone
            )
        if f.name == "display_name" and not obj.is_contacts:
            return self.display_name(obj, rec) or None
        if f is obj.stage_field:
            stage = obj.stage(str(rec.values.get(f.id)))
            if stage is None:
                return None
            return {k: stage.get(k) for k in ("id", "name", "status", "order")}
        return _NOT_DERIVED

    def render_record(
        self, obj: ObjectDef, rec: Record, fields: Iterable[FieldDef], *, can_write: bool
    ) -> dict[str, Any]:
        """EntityRecordDetail: blank fields omitted, big to-many relations summarised."""
        out: dict[str, Any] = {}
        for f in fields:
            entry: dict[str, Any] = {
                "id": f.id,
                "name": f.name,
                "field_type": f.field_type,
                "display_name": f.display_name,
            }
            derived = self._derived(obj, rec, f)
            if derived is not _NOT_DERIVED:
                if derived is not None:
                    entry["value"] = derived
                    out[f.id] = entry
                continue
            stored = rec.values.get(f.id)
            if stored is None:
                continue
            value = render(f, stored, self)
            if is_blank(value):
                continue
            if f.multi and f.field_type == "relationship" and len(value) > SUMMARY_THRESHOLD:
                entry["value_summary"] = {"count": len(value)}
            else:
                entry["value"] = value
            out[f.id] = entry
        client_info = None
        if obj.is_contacts:
            status = obj.by_name.get("email_status")
            option = status.options_by_id.get(rec.values.get(status.id, ""), {}) if status else {}
            client_info = {
                "display_name": self.display_name(obj, rec),
                "email_on_suppression_list": option.get("code") == "suppression_list",
                "num_addresses_v2": 0,
            }
        owner = obj.by_name.get("owner")
        return {
            "id": rec.id,
            "object_type": obj.object_type,
            "num_upcoming_activities": 0,
            "num_associated_team_members": int(bool(owner and rec.values.get(owner.id))),
            "lead_source_types": [],
            "client_info": client_info,
            "access": {"view": True, "edit": can_write, "remove": can_write},
            "fields": out,
        }

    # --- writes -------------------------------------------------------------------------------

    def upload_file(self, name: str) -> str:
        """Register an uploaded file (what ``POST /api/s3/success`` confirms); returns its id."""
        file_id = str(uuid.uuid4())
        self.files[file_id] = {"id": file_id, "name": name}
        return file_id

    def _parse(self, obj: ObjectDef, entries: Any) -> list[Op]:
        """Validated ops, minus writes the ``ignored_fields`` knob drops silently (and the
        default ``display_name`` field, which Kizen derives from the record's name).
        """
        ops = parse_entries(obj, entries, self)
        return [
            op
            for op in ops
            if op.field.name not in self.ignored_fields
            and not (op.field.name == "display_name" and not obj.is_contacts)
        ]

    def _ident_index(self, ops: list[Op], obj: ObjectDef) -> int | None:
        hits = [op.index for op in ops if op.field.id == obj.identifier.id]
        return hits[-1] if hits else None

    def _rename_archived(self, obj: ObjectDef, holder: Record) -> None:
        current = str(holder.values[obj.identifier.id])
        local, at, domain = current.partition("@") if obj.is_contacts else (current, "", "")
        n = 1
        while True:
            candidate = f"{local}_archived_{n}{at}{domain}"
            if not self.store.identifier_taken(obj.id, candidate):
                break
            n += 1
        holder.values[obj.identifier.id] = candidate
        holder.updated = now_iso()
        self.store.save(holder, candidate)

    def _refuse(
        self, obj: ObjectDef, ops: list[Op], count: int, message: str, code: str
    ) -> ApiError:
        """A positional 400 on the identifier entry, or a non-field one without it."""
        where = self._ident_index(ops, obj)
        if where is None:
            return field_errors(count, {}, [message])
        return field_errors(count, {where: {"value": [message], "code": [code]}})

    def _check_identity(
        self,
        obj: ObjectDef,
        rec_id: str | None,
        values: dict[str, Any],
        ops: list[Op],
        count: int,
        archived_conflict: str | None,
    ) -> list[Record]:
        """Refuse a taken identifier; return the archived holders to rename on overwrite."""
        ident = values.get(obj.identifier.id)
        if not ident:
            return []
        others = [r for r in self.store.holders(obj.id, ident, exact=False) if r.id != rec_id]
        if obj.is_contacts and any(not r.archived for r in others):
            message = f"A record with this {obj.identifier.name} already exists."
            raise self._refuse(obj, ops, count, message, "unique")
        archived = [r for r in others if r.archived]
        if archived and archived_conflict != "overwrite":
            message = (
                f"An archived record already uses this {obj.identifier.name}; restore it or "
                "pass overwrite to rename it."
            )
            raise self._refuse(obj, ops, count, message, "conflict")
        return archived

    def _required_missing(self, obj: ObjectDef, values: dict[str, Any]) -> list[str]:
        return [
            f"Field '{f.name}' is required."
            for f in obj.fields
            if f.spec.get("is_required") and f.id not in values and f is not obj.stage_field
        ]

    def create(
        self,
        obj: ObjectDef,
        entries: Any,
        *,
        unarchive: str | None = None,
        record_id: str | None = None,
    ) -> tuple[Record, str]:
        """Create (or, with ``unarchive``, restore) a record; returns it and the action."""
        ops = self._parse(obj, entries)
        values = apply_ops({}, ops)
        missing = self._required_missing(obj, values)
        if missing:
            raise field_errors(len(ops), {}, missing)
        ident = values.get(obj.identifier.id)
        if ident and unarchive == "unarchive":
            archived = [r for r in self.store.holders(obj.id, ident, exact=False) if r.archived]
            if archived:
                holder = archived[0]
                holder.values = apply_ops(holder.values, ops)
                holder.archived = False
                holder.updated = now_iso()
                self.store.save(holder, holder.values.get(obj.identifier.id))
                return holder, "unarchived"
        to_rename = self._check_identity(
            obj, None, values, ops, len(ops), "overwrite" if unarchive == "overwrite" else None
        )
        for holder in to_rename:
            self._rename_archived(obj, holder)
        stage = obj.stage_field
        if stage is not None:
            values[stage.id] = obj.stages[0]["id"]
        stamp = now_iso()
        rec = Record(
            id=record_id or str(uuid.uuid4()),
            object_id=obj.id,
            created=stamp,
            updated=stamp,
            values=values,
        )
        self.store.save(rec, ident)
        return rec, "created"

    def update(
        self, obj: ObjectDef, rec: Record, entries: Any, archived_conflict: str | None
    ) -> list[Op]:
        """Apply entries to a live record; returns the ops (their fields were "updated")."""
        ops = self._parse(obj, entries)
        values = apply_ops(rec.values, ops)
        to_rename = self._check_identity(obj, rec.id, values, ops, len(ops), archived_conflict)
        for holder in to_rename:
            self._rename_archived(obj, holder)
        rec.values = values
        rec.updated = now_iso()
        self.store.save(rec, values.get(obj.identifier.id))
        return ops

    def upsert(
        self,
        obj: ObjectDef,
        lookup_value: str,
        entries: list[Any],
        *,
        oncreate_unarchive: str | None,
        onupdate_archived_conflict: str | None,
    ) -> tuple[Record, str, list[Op]]:
        """Update the first live ``__iexact`` match of ``lookup_value`` or create; archived
        matches follow ``oncreate_unarchive`` (``prompt``/null -> 400, ``unarchive``,
        ``overwrite``).
        """
        ident = obj.identifier
        holders = self.store.holders(obj.id, lookup_value, exact=False)
        live = [r for r in holders if not r.archived]
        if live:
            ops = self.update(obj, live[0], entries, onupdate_archived_conflict)
            return live[0], "updated", ops
        if holders and oncreate_unarchive not in ("unarchive", "overwrite"):
            raise field_errors(
                len(entries) if isinstance(entries, list) else 0,
                {},
                [
                    f"An archived record matches this {ident.name}; pass oncreate_unarchive "
                    "'unarchive' to restore it or 'overwrite' to create a new one."
                ],
            )
        if holders and oncreate_unarchive == "unarchive":
            holder = holders[0]
            ops = self.update(obj, holder, entries, onupdate_archived_conflict)
            holder.archived = False
            self.store.save(holder, holder.values.get(ident.id))
            return holder, "unarchived", ops
        # The identifier comes from ``lookup_value`` only when a record is created.
        if not any(
            isinstance(e, dict) and (e.get("name") == ident.name or e.get("id") == ident.id)
            for e in entries
        ):
            entries = [*entries, {"name": ident.name, "value": lookup_value}]
        rec, action = self.create(obj, entries, unarchive=oncreate_unarchive)
        return rec, action, []

    def move(self, obj: ObjectDef, rec: Record, body: dict[str, Any]) -> None:
        """``PATCH .../move``: put a pipeline record into another stage."""
        stage_field = obj.stage_field
        if stage_field is None:
            raise ApiError(400, {"non_field_errors": [f"Object '{obj.name}' is not a pipeline."]})
        stage_id = body.get("stage_id")
        if not isinstance(stage_id, str) or obj.stage(stage_id.lower()) is None:
            raise ApiError(400, {"stage_id": [f"Invalid stage id '{stage_id}'."]})
        rec.values[stage_field.id] = stage_id.lower()
        rec.updated = now_iso()
        self.store.save(rec, rec.values.get(obj.identifier.id))

    def archive(self, obj: ObjectDef, rec: Record) -> None:
        """Soft-delete: the record keeps its data and its identifier."""
        rec.archived = True
        rec.updated = now_iso()
        self.store.save(rec, rec.values.get(obj.identifier.id))

    def unarchive(self, obj: ObjectDef, record_id: str) -> Record:
        """Restore an archived record: 404 when unknown, 400 when it is not archived (the
        live contract lists 200 and 400 only).
        """
        rec = self.store.by_id.get(record_id.lower())
        if rec is None or rec.object_id != obj.id:
            raise not_found()
        if not rec.archived:
            raise ApiError(400, {"non_field_errors": ["This record is not archived."]})
        rec.archived = False
        rec.updated = now_iso()
        self.store.save(rec, rec.values.get(obj.identifier.id))
        return rec

    # --- reads --------------------------------------------------------------------------------

    def search(self, obj: ObjectDef, text: str | None, ordering: str | None) -> list[Record]:
        """Live records in creation order, filtered by free text and optionally sorted."""
        rows = [r for r in self.store.objects_records(obj.id).values() if not r.archived]
        if text:
            needle = text.casefold()
            names = _CONTACT_SEARCH if obj.is_contacts else ("name",)
            ids = [obj.by_name[n].id for n in names if n in obj.by_name]
            rows = [
                r for r in rows if any(needle in str(r.values.get(i, "")).casefold() for i in ids)
            ]
        if ordering:
            desc = ordering.startswith("-")
            f = obj.field(ordering.lstrip("-"))
            if f is None:
                raise ApiError(
                    400,
                    {
                        "count": 0,
                        "next": None,
                        "previous": None,
                        "results": [],
                        "errors": [f"Cannot order by '{ordering}'."],
                    },
                )

            def key(r: Record) -> tuple[bool, str]:
                value = (
                    r.created
                    if f.name == "created"
                    else r.updated
                    if f.name == "updated"
                    else r.values.get(f.id)
                )
                return (value is None, str(value).casefold() if value is not None else "")

            rows.sort(key=key, reverse=desc)
        return rows

    def field_values(self, record_id: str, field_id: str, text: str | None) -> list[dict[str, Any]]:
        """All related records of a relationship field of a live record (for paging)."""
        rec = self.store.by_id.get(record_id.lower())
        f = self.business.fields_by_id.get(field_id.lower())
        if rec is None or rec.archived or f is None or f.object_id != rec.object_id:
            raise not_found()
        if f.field_type != "relationship":
            raise ApiError(
                400,
                {
                    "count": 0,
                    "next": None,
                    "previous": None,
                    "results": [],
                    "errors": [f"Field '{f.name}' is not a relationship field."],
                },
            )
        stored = rec.values.get(f.id)
        ids = stored if isinstance(stored, list) else ([stored] if stored else [])
        out: list[dict[str, Any]] = []
        for rid in ids:
            target = self.store.by_id.get(rid)
            if target is None or target.archived:
                continue
            tobj = self.business.by_ref[target.object_id]
            label = self.display_name(tobj, target)
            if tobj.is_contacts:
                names = self._contact_names(tobj, target)
                full = f"{names['first_name']} {names['last_name']}".strip()
                item = {"id": rid, **names, "full_name": full, "display_name": label}
            else:
                item = {"id": rid, "name": label, "display_name": label}
            if (
                not text
                or text.casefold() in label.casefold()
                or (text.casefold() in str(item.get("email", "")).casefold())
            ):
                out.append(item)
        return out
