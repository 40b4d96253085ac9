"""Rows the warehouse holds but cannot hand over: found, set aside, failed one by one.

SQLite stores text exactly as it was given, so a row can hold bytes that are not UTF-8 (a
latin-1 load, a BLOB cast to TEXT). The first read that meets one (the fingerprint's Python
function, or the row's values) fails the whole statement: "user-defined function raised
exception", naming no row or column. Checking every value up front would cost a second
Python call per row on every diff; instead the failure is what triggers a search:

1. a read fails with the dialect's text-decoding error
   (:meth:`~.dialects.base.Dialect.is_text_decode_error`);
2. :meth:`Unreadable.locate` finds every such row in scope in one statement that reads raw
   bytes only (:meth:`~.dialects.base.Dialect.text_valid`), with the first offending column;
3. those rows are left out of both sides of the diff (by their keys' raw bytes, so that a
   synced row that went bad is not seen as deleted), :class:`UnreadableRows` tells the caller
   to read again, and each of them is reported as a change carrying a ``problem``: the
   planner fails that record, naming the row and the column; the rest of the sync goes on.

Warehouses that enforce an encoding (PostgreSQL and the others) never get here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import LargeBinary, Select, case, cast, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from kizen_sync.errors import SourceError
from kizen_sync.models import ChangedRow, ChangeKind, Partition
from kizen_sync.warehouse.engine import Warehouse
from kizen_sync.warehouse.source import Source

__all__ = ["Unreadable", "UnreadableRows"]


class UnreadableRows(SourceError):
    """Rows that cannot be read were found and set aside: read the changes again."""


@dataclass
class Unreadable:
    """The unreadable rows of one sync found so far, by partition.

    Args:
        warehouse: the warehouse (its dialect decides whether this can happen at all).
        source: the sync's checked source.
        columns: every column a diff reads (keys, mapped, record id, soft delete...).
    """

    warehouse: Warehouse
    source: Source
    columns: Sequence[str]
    found: dict[str | None, dict[bytes, tuple[str, str]]] = field(default_factory=dict)

    def _rows(self, partition: Partition | None) -> dict[bytes, tuple[str, str]]:
        return self.found.get(partition.key if partition is not None else None, {})

    def exclude_source(self, query: Select[Any], partition: Partition | None) -> Select[Any]:
        """``query`` over the source without the unreadable rows of ``partition``."""
        raw = list(self._rows(partition))
        if not raw:
            return query
        return query.where(cast(self.source.key_expr(), LargeBinary).not_in(raw))

    def exclude_state(
        self, query: Select[Any], key: ColumnElement[str], partition: Partition | None
    ) -> Select[Any]:
        """``query`` over state rows without those of the unreadable rows."""
        raw = list(self._rows(partition))
        if not raw:
            return query
        return query.where(cast(key, LargeBinary).not_in(raw))

    def is_decode_error(self, error: BaseException) -> bool:
        """The read failed on text the driver cannot decode."""
        dialect = self.warehouse.sql_dialect
        return dialect.undecodable_text and dialect.is_text_decode_error(error)

    def locate(
        self, query: Any, partition: Partition | None, keys: Collection[str] | None
    ) -> UnreadableRows | None:
        """Find every unreadable row in scope (``query(columns, partition, keys)`` builds
        the source query); the error to raise so the caller reads again, or None when
        nothing new was found (the failure was something else).
        """
        dialect = self.warehouse.sql_dialect
        checks = [(name, dialect.text_valid(self.source.column(name))) for name in self.columns]
        first_bad = case(*((not_(ok), literal(name)) for name, ok in checks), else_=None)
        stmt = query(
            [cast(self.source.key_expr(), LargeBinary).label("raw"), first_bad.label("bad")],
            partition,
            None if keys is None else list(keys),
        ).where(or_(*(not_(ok) for _, ok in checks)))
        with self.warehouse.connect() as conn:
            rows = conn.execute(stmt).all()
        known = self.found.setdefault(partition.key if partition is not None else None, {})
        new = {bytes(raw): column for raw, column in rows if bytes(raw) not in known}
        if not new:
            return None
        for raw, column in new.items():
            known[raw] = (raw.decode("utf-8", "backslashreplace"), column)
        shown = ", ".join(f"'{known[r][0]}' ({known[r][1]})" for r in list(new)[:5])
        return UnreadableRows(
            f"sync {self.source.sync.name!r}: {len(new)} row(s) hold bytes that are not valid "
            f"UTF-8, e.g. {shown}; they fail one by one and the others are read again",
            sync=self.source.sync.name,
            rows=len(new),
        )

    def changes(self, partition: Partition | None, states: dict[str, Any]) -> Iterator[ChangedRow]:
        """One change per unreadable row of ``partition``, carrying its ``problem``."""
        for key, column in self._rows(partition).values():
            state = states.get(key)
            yield ChangedRow(
                kind=ChangeKind.NEW if state is None else ChangeKind.CHANGED,
                source_key=key,
                row=None,
                state=state,
                fingerprint=None,
                problem=(
                    f"row '{key}': column {column!r} holds bytes that are not valid UTF-8 "
                    "(the warehouse stores text as it was given); nothing was sent for this row"
                    + (
                        " and no Kizen record was created for it"
                        if state is None
                        else " and its Kizen record keeps its values"
                    )
                    + ". Fix the value in the source; the next run sends the row."
                ),
                problem_column=column,
            )

    def keys(self, partition: Partition | None) -> list[str]:
        """The text form of the unreadable rows' keys (bytes shown as escapes)."""
        return [key for key, _ in self._rows(partition).values()]
