"""Kizen object and field schema, as returned by schema discovery.

These models are shared by the client (which parses ``GET /api/custom-objects/{id}/fields``),
the config validator (fields exist, types fit, option labels exist) and the mapper (which
coerces warehouse values to each field's write shape). Unknown keys from Kizen are ignored so
that new server-side attributes never break a sync.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "FIELD_TYPES",
    "MULTI_VALUED_TYPES",
    "OPTION_TYPES",
    "FieldOption",
    "FieldSchema",
    "FieldType",
    "ObjectSchema",
    "Relation",
]

FieldType = Literal[
    "checkbox",
    "checkboxes",
    "choices",
    "date",
    "datetime",
    "decimal",
    "dropdown",
    "dynamictags",
    "email",
    "files",
    "integer",
    "longtext",
    "money",
    "phonenumber",
    "radio",
    "rating",
    "relationship",
    "selector",
    "status",
    "team_selector",
    "text",
    "timezone",
    "wysiwyg",
    "yesnomaybe",
]

#: The 24 ``field_type`` values of the Kizen API (docs/kizen-api.md section 4).
FIELD_TYPES: tuple[str, ...] = FieldType.__args__  # type: ignore[attr-defined]

#: Types whose value is one option of the field's ``options`` list.
OPTION_TYPES = frozenset({"dropdown", "radio", "choices", "status", "yesnomaybe", "selector"})

#: Types that are always multi-valued (``add_values`` / ``remove_values``).
MULTI_VALUED_TYPES = frozenset({"checkboxes", "dynamictags"})

#: Relationship cardinalities that hold many values on this side.
TO_MANY = frozenset({"one_to_many", "many_to_many"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class FieldOption(_Model):
    """One choice of an option field (``{id, code, name}`` on the wire)."""

    id: str
    name: str
    code: str | None = None
    order: int | None = None


class Relation(_Model):
    """Relationship metadata of a ``relationship`` field."""

    related_object: str | None = None
    related_field: str | None = None
    related_object_name: str | None = None
    related_object_object_name: str | None = None
    relation_type: str | None = None
    cardinality: str | None = None

    @property
    def to_many(self) -> bool:
        """True when this side holds many related records."""
        return (self.cardinality or "") in TO_MANY


class FieldSchema(_Model):
    """One field of a Kizen object."""

    id: str
    name: str
    display_name: str = ""
    field_type: str
    is_required: bool = False
    is_read_only: bool = False
    is_hidden: bool = False
    allows_nulls: bool = True
    allows_empty: bool = True
    options: list[FieldOption] | None = None
    relation: Relation | None = None
    money_options: dict[str, object] | None = None
    decimal_options: dict[str, object] | None = None
    rating: dict[str, object] | None = None
    meta: dict[str, object] | None = Field(default=None)
    allow_multiple_flag: bool | None = Field(default=None, alias="allow_multiple")

    @property
    def allow_multiple(self) -> bool:
        """``files`` fields are multi-valued when created with ``allow_multiple`` (AE); where
        Kizen reports it on read is unknown, so the key is accepted at the top level or in
        ``meta``. Without it a files field is single: its value is still an array (AE).
        """
        if self.allow_multiple_flag is not None:
            return self.allow_multiple_flag
        return bool((self.meta or {}).get("allow_multiple"))

    @property
    def is_multi_valued(self) -> bool:
        """True when writes use ``add_values`` / ``remove_values``."""
        if self.field_type in MULTI_VALUED_TYPES:
            return True
        if self.field_type == "relationship":
            return self.relation is not None and self.relation.to_many
        if self.field_type == "files":
            return self.allow_multiple
        return False

    def option_by_label(self, label: str) -> FieldOption | None:
        """The option whose name matches ``label`` (case-insensitive), else ``None``."""
        wanted = label.strip().casefold()
        for option in self.options or []:
            if option.name.strip().casefold() == wanted:
                return option
        return None

    def option_by_id(self, option_id: str) -> FieldOption | None:
        """The option with this id (or code), else ``None``."""
        for option in self.options or []:
            if option.id == option_id or (option.code is not None and option.code == option_id):
                return option
        return None


class ObjectSchema(_Model):
    """A Kizen object (contacts are ``client_client``) with its fields."""

    id: str
    name: str
    object_name: str = ""
    entity_name: str = ""
    object_type: str = "standard"
    fields: list[FieldSchema] = Field(default_factory=list)

    @property
    def is_contacts(self) -> bool:
        """Contacts are identified by email, every other object by name."""
        return self.name == "client_client"

    @property
    def identifier_field(self) -> str:
        """API name of the field that is unique within the object."""
        return "email" if self.is_contacts else "name"

    @property
    def stage_field(self) -> FieldSchema | None:
        """The default ``stage`` field of a pipeline object.

        Kizen changes a record's stage only through ``PATCH .../move`` with a ``stage_id``
        (AE, BC), never through ``fields``; kizen-sync refuses to map it.
        """
        return self.field("stage") if self.object_type == "pipeline" else None

    @property
    def derived_fields(self) -> frozenset[str]:
        """Default fields Kizen computes: ``created``, ``updated`` and, on custom objects,
        ``display_name`` (the live capture shows it equal to the name; no source writes it).
        """
        names = {"created", "updated"}
        if not self.is_contacts:
            names.add("display_name")
        return frozenset(names)

    def field(self, name_or_id: str) -> FieldSchema | None:
        """Find a field by API name or by field UUID."""
        for f in self.fields:
            if f.name == name_or_id or f.id == name_or_id:
                return f
        return None
