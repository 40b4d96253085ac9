"""Typed results of the Kizen client.

Plain frozen dataclasses built by hand from the JSON: the apply path parses one record per
request, so construction cost matters more than validation (Kizen's own shapes vary by field
type and the mapper normalises values anyway). Unknown keys are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "FieldValue",
    "FieldValueItem",
    "ObjectSummary",
    "Page",
    "Record",
    "Tag",
    "UpsertAction",
    "UpsertResult",
]

T = TypeVar("T")

UpsertAction = Literal["created", "updated", "unarchived"]


@dataclass(frozen=True, slots=True)
class FieldValue:
    """One field of a record as Kizen returned it.

    A to-many relationship with more than 100 values carries no ``value`` but a
    ``value_summary`` (``{"count": N}``); read the values with ``iter_field_values``.
    """

    id: str
    name: str
    field_type: str
    display_name: str
    value: Any
    value_summary: Mapping[str, Any] | None = None

    @property
    def is_summarized(self) -> bool:
        """True when ``value`` is withheld and only ``value_summary`` is given."""
        return self.value_summary is not None

    @classmethod
    def from_wire(cls, field_id: str, data: Mapping[str, Any]) -> FieldValue:
        """Build from one entry of a record's ``fields`` map."""
        return cls(
            id=str(data.get("id") or field_id),
            name=str(data.get("name") or ""),
            field_type=str(data.get("field_type") or ""),
            display_name=str(data.get("display_name") or ""),
            value=data.get("value"),
            value_summary=data.get("value_summary"),
        )


@dataclass(frozen=True)
class Record:
    """A Kizen record: ``fields`` maps field UUID -> :class:`FieldValue`.

    Blank fields are omitted by Kizen, so a missing field means "empty or not requested".
    """

    id: str
    object_type: str | None = None
    fields: dict[str, FieldValue] = field(default_factory=dict)

    @cached_property
    def _by_name(self) -> dict[str, FieldValue]:
        return {fv.name: fv for fv in self.fields.values() if fv.name}

    def field(self, name_or_id: str) -> FieldValue | None:
        """The field addressed by UUID or API name, or ``None`` when absent."""
        return self.fields.get(name_or_id) or self._by_name.get(name_or_id)

    def value(self, name_or_id: str) -> Any:
        """The field's ``value`` (``None`` when absent, blank or summarized)."""
        fv = self.field(name_or_id)
        return None if fv is None else fv.value

    @classmethod
    def from_wire(cls, data: Any, *, record_id: str | None = None) -> Record:
        """Build from a record response (get, patch, search row, add, upsert).

        ``record_id`` is the id the caller addressed: a write answer is accepted without an
        ``id`` of its own (its body is documented only in part), with only what it carries.

        Raises:
            KeyError: the answer names no record and the caller gave no ``record_id``.
        """
        if not isinstance(data, Mapping):
            data = {}
        if record_id is not None and not data.get("id"):
            data = {**data, "id": record_id}
        raw = data.get("fields") or {}
        if isinstance(raw, Mapping):
            fields = {
                k: FieldValue.from_wire(k, v) for k, v in raw.items() if isinstance(v, Mapping)
            }
        else:  # tolerate a list of field objects
            items = (
                FieldValue.from_wire(str(v.get("id")), v) for v in raw if isinstance(v, Mapping)
            )
            fields = {fv.id: fv for fv in items}
        return cls(id=str(data["id"]), object_type=data.get("object_type"), fields=fields)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a paged list (``next``/``previous`` are Kizen's absolute URLs)."""

    count: int | None
    next: str | None
    previous: str | None
    results: list[T]
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_wire(cls, data: Any, item: Callable[[Mapping[str, Any]], T]) -> Page[T]:
        """Build from the ``{count, next, previous, results, errors}`` envelope.

        Some Kizen lists are bare JSON arrays (AE: field lists, categories; Kizen's CLI
        accepts one from any list route), read as one complete page.
        """
        if isinstance(data, list):
            rows = [item(r) for r in data if isinstance(r, Mapping)]
            return cls(count=len(rows), next=None, previous=None, results=rows)
        count = data.get("count")
        return cls(
            count=int(count) if count is not None else None,
            next=data.get("next"),
            previous=data.get("previous"),
            results=[item(r) for r in data.get("results") or []],
            errors=[str(e) for e in data.get("errors") or []],
        )


@dataclass(frozen=True, slots=True)
class FieldValueItem:
    """One value of a (summarized) relationship field: a record or a contact."""

    id: str
    display_name: str
    name: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> FieldValueItem:
        """Build from one ``results`` row of ``/api/records/{id}/field-values/{field}``."""
        return cls(
            id=str(data["id"]),
            display_name=str(data.get("display_name") or data.get("name") or ""),
            name=data.get("name"),
            email=data.get("email"),
            first_name=data.get("first_name"),
            last_name=data.get("last_name"),
        )


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """What an upsert did: the record, and whether it was created, updated or unarchived."""

    record: Record
    action: UpsertAction


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    """One Kizen object from ``GET /api/custom-objects`` (contacts are ``client_client``)."""

    id: str
    name: str
    object_name: str = ""
    entity_name: str = ""
    object_type: str = "standard"
    is_custom: bool = True

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> ObjectSummary:
        """Build from one list item."""
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            object_name=str(data.get("object_name") or ""),
            entity_name=str(data.get("entity_name") or ""),
            object_type=str(data.get("object_type") or "standard"),
            is_custom=bool(data.get("is_custom", True)),
        )


@dataclass(frozen=True, slots=True)
class Tag:
    """One dynamic tag of a ``dynamictags`` field."""

    id: str
    name: str

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Tag:
        """Build from one ``{id, name}`` item."""
        return cls(id=str(data["id"]), name=str(data["name"]))
