"""Pre-flight: do the source's option and tag values exist in Kizen?

A value that is not an option of its field (``tier = 'Platinum'`` where Kizen has Gold, Silver
and Bronze), or a dynamic tag Kizen does not have (without ``create_missing_tags``), fails
every row that holds it, on every run, until someone adds the option or fixes the data. The
schema checks cannot see it: the mapping is right, the data is not. So ``check`` reads the
distinct values of each column mapped to an option, checkboxes or dynamic-tags field and
resolves them exactly as a run would (:func:`kizen_sync.mapping.coerce`), naming the values
Kizen lacks. It reads only: ``SELECT DISTINCT`` of those columns, live rows only, at most
:data:`DISTINCT_LIMIT` values per column (a column with more is checked on that many, and says
so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import not_, select
from sqlalchemy.exc import SQLAlchemyError

from kizen_sync import mapping
from kizen_sync.config import FieldMapping, SyncConfig
from kizen_sync.errors import MappingError
from kizen_sync.preflight.results import Check, Status
from kizen_sync.schema import OPTION_TYPES, FieldSchema, ObjectSchema
from kizen_sync.warehouse import Source

__all__ = ["DISTINCT_LIMIT", "check_values"]

_AREA = "warehouse"
#: Distinct values read per column: enough for any list of options a person maintains.
DISTINCT_LIMIT = 1000
#: Values named in a message.
_SHOWN = 10


def _checked(field: FieldSchema, sync: SyncConfig) -> bool:
    if field.field_type == "dynamictags":
        return not sync.create_missing_tags
    return field.field_type in OPTION_TYPES or field.field_type == "checkboxes"


def _unknown(
    field: FieldSchema, spec: FieldMapping, raw: Any, tags: Mapping[str, str] | None
) -> dict[str, str]:
    """The items of ``raw`` Kizen lacks, each with the run's message for it."""
    items: list[Any] = (
        list(mapping.item_texts(field, spec, raw)) if field.is_multi_valued else [raw]
    )
    found: dict[str, str] = {}
    for item in items:
        try:
            mapping.coerce(field, spec, [item] if field.is_multi_valued else item, tags=tags)
        except MappingError as exc:
            found[str(item)] = exc.problem
    return found


def _fix(field: FieldSchema, key: str) -> str:
    if field.field_type == "dynamictags":
        return (
            f"create the tags in Kizen, set create_missing_tags: true on the sync, or fix "
            f"the rows (the column of {key})"
        )
    return (
        f"add the options to field {field.name!r} in Kizen, or fix the rows / map the "
        f"values in SQL (a view or source.query) for the column of {key}"
    )


def check_values(
    source: Source,
    index: int,
    schema: ObjectSchema,
    tags: Mapping[str, Mapping[str, str]],
) -> list[Check]:
    """One ``FAIL`` per column holding values its field lacks, or one ``OK`` for the sync.

    Args:
        source: the sync's checked source (its warehouse, columns and soft-delete rule).
        index: the sync's position in the file (keys name ``syncs[index].fields[i]``).
        schema: the sync's object schema, read from Kizen.
        tags: per dynamic-tags field name, its tags as label -> id (a field whose tags could
            not be listed is missing and not checked).
    """
    sync = source.sync
    checks: list[Check] = []
    columns = 0
    for i, spec in enumerate(sync.fields):
        field = schema.field(spec.field)
        if field is None or not _checked(field, sync):
            continue
        if field.field_type == "dynamictags" and field.name not in tags:
            continue
        key = f"syncs[{index}].fields[{i}].column"
        column = source.column(spec.column)
        query = select(column).where(column.is_not(None)).distinct().limit(DISTINCT_LIMIT + 1)
        deleted = source.soft_deleted()
        if deleted is not None:
            query = query.where(not_(deleted))
        try:
            with source.warehouse.connect() as conn:
                values = [row[0] for row in conn.execute(query)]
        except SQLAlchemyError as exc:
            cause = type(getattr(exc, "orig", None) or exc).__name__
            checks.append(
                Check(
                    _AREA,
                    f"values {spec.column}",
                    Status.WARN,
                    f"the distinct values of {spec.column!r} could not be read "
                    f"({cause}), so they were not checked against "
                    f"the options of {field.name!r}",
                    sync=sync.name,
                    key=key,
                )
            )
            continue
        columns += 1
        partial = len(values) > DISTINCT_LIMIT
        unknown: dict[str, str] = {}
        for raw in values[:DISTINCT_LIMIT]:
            unknown.update(_unknown(field, spec, raw, tags.get(field.name)))
        if not unknown:
            continue
        names = sorted(unknown)
        shown = ", ".join(repr(n) for n in names[:_SHOWN])
        more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
        scope = f" (among its first {DISTINCT_LIMIT} distinct values)" if partial else ""
        checks.append(
            Check(
                _AREA,
                f"values {spec.column}",
                Status.FAIL,
                f"column {spec.column!r} holds {len(names)} value(s){scope} that field "
                f"{field.name!r} does not have: {shown}{more}; the rows holding them would "
                f"fail ({unknown[names[0]]})",
                _fix(field, key),
                sync.name,
                key,
            )
        )
    if columns and not any(c.status is Status.FAIL for c in checks):
        checks.append(
            Check(
                _AREA,
                "values",
                Status.OK,
                f"every option and tag value of {columns} column(s) exists in Kizen",
                sync=sync.name,
            )
        )
    return checks
