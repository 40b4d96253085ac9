"""The emulated business: team members, objects, fields, options, tags and seed records.

A business file is JSON with these keys::

    {"business": {"id", "name", "timezone"},
     "team_members": [{"id", "first_name", "last_name", "email", "active"}],
     "files": [{"id", "name"}],
     "objects": [{"id", "name", "object_name", "entity_name", "object_type", "is_custom",
                  "categories": [{"id", "name", "order"}],
                  "stages": [{"id", "name", "status", "percentage_chance_to_close", "order"}],
                  "fields": [{"id", "name", "display_name", "field_type", "category", ...}]}],
     "records": {"<object api name>": [{"id", "created"?,
                                        "fields": {"<field name>": <write value>}}]}}

Field keys follow ``GET /api/custom-objects/{id}/fields``; flags left out take Kizen's usual
defaults (see :data:`FIELD_DEFAULTS`). Two keys are emulator-only: ``is_default`` (the field is
returned when a caller asks for "default fields only") and ``tags`` (the dynamic tags of a
``dynamictags`` field, which Kizen serves from a separate endpoint rather than inline options).
Everything is parsed once into frozen lookups so the request path never scans lists.

What real Kizen does and the file need not spell out (``docs/architecture.md``, "Wire shapes"):
a ``rating`` field without options gets Kizen's generated scale (``"1 - Low"`` .. ``"5 - High"``,
codes ``"1"``..``"5"``, confirmed live by Kizen's CLI); a ``pipeline`` object's ``stage`` field
takes its options from ``stages``; ``files`` lists the files uploaded to the business, the only
ids a ``files`` field accepts; ``timezone`` is the zone datetimes are rendered in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FIELD_DEFAULTS", "Business", "FieldDef", "ObjectDef", "TeamMember", "load_business"]

#: Flags a field file may omit, with the value Kizen uses when a field is created plainly.
FIELD_DEFAULTS: dict[str, Any] = {
    "description": "",
    "is_required": False,
    "is_read_only": False,
    "is_hidden": False,
    "is_deletable": True,
    "is_hideable": True,
    "is_suppressed": False,
    "allows_nulls": True,
    "allows_empty": True,
    "options": None,
    "relation": None,
    "money_options": None,
    "decimal_options": None,
    "rating": None,
    "phonenumber_options": None,
    "meta": {},
}

_TO_MANY = frozenset({"one_to_many", "many_to_many"})
_ALWAYS_MULTI = frozenset({"checkboxes", "dynamictags"})
#: Namespace of the ids of generated rating options (stable across restarts).
_RATING_NS = uuid.UUID("8d5c7f52-52a4-4f1c-9a0e-0b6c9d1f5a11")


@dataclass(frozen=True)
class TeamMember:
    """An employee of the business; only active ones may be assigned to team fields."""

    id: str
    first_name: str
    last_name: str
    email: str
    active: bool = True

    def read_shape(self) -> dict[str, Any]:
        """The documented team-member read value ``{id, deleted, first_name, last_name, email}``."""
        return {
            "id": self.id,
            "deleted": not self.active,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
        }


@dataclass
class FieldDef:
    """One field with its wire description and the lookups validation needs."""

    id: str
    name: str
    field_type: str
    object_id: str
    spec: dict[str, Any]
    options_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    options_by_label: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags_by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags_by_label: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        """The label shown in Kizen."""
        return str(self.spec["display_name"])

    @property
    def relation(self) -> dict[str, Any] | None:
        """Relationship metadata, ``None`` for other types."""
        rel = self.spec.get("relation")
        return rel if isinstance(rel, dict) else None

    @property
    def to_many(self) -> bool:
        """True for relationships whose cardinality holds many records on this side."""
        rel = self.relation
        return rel is not None and rel.get("cardinality") in _TO_MANY

    @property
    def allow_multiple(self) -> bool:
        """``files`` fields hold more than one file only when created with ``allow_multiple``
        (the create key, AE); older business files put it in ``meta``.
        """
        return bool(
            self.spec.get("allow_multiple") or (self.spec.get("meta") or {}).get("allow_multiple")
        )

    @property
    def multi(self) -> bool:
        """True when the field takes ``add_values`` / ``remove_values``."""
        if self.field_type in _ALWAYS_MULTI:
            return True
        if self.field_type == "relationship":
            return self.to_many
        if self.field_type == "files":
            return self.allow_multiple
        return False

    def public(self) -> dict[str, Any]:
        """The field as ``GET /api/custom-objects/{id}/fields`` lists it (no emulator keys)."""
        return {k: v for k, v in self.spec.items() if k not in ("tags", "is_default")}


def rating_options(field_id: str, scale: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The options Kizen generates for a rating field: ``"1 - Low"``, ``"2"`` .. ``"5 - High"``.

    Codes are the numbers as text. Confirmed live for the default 1-5 scale (Kizen's CLI,
    ``docs/specs/field.md``); other scales follow the same pattern with the scale's labels.
    """
    scale = scale or {}
    low, high = int(scale.get("min_value", 1)), int(scale.get("max_value", 5))
    labels = {low: scale.get("min_label", "Low"), high: scale.get("max_label", "High")}
    out = []
    for order, n in enumerate(range(low, high + 1)):
        name = f"{n} - {labels[n]}" if n in labels else str(n)
        option_id = str(uuid.uuid5(_RATING_NS, f"{field_id}:{n}"))
        out.append({"id": option_id, "name": name, "code": str(n), "order": order})
    return out


@dataclass
class ObjectDef:
    """One object (contacts are ``client_client``) with fields indexed by id and API name."""

    id: str
    name: str
    spec: dict[str, Any]
    fields: list[FieldDef]
    by_id: dict[str, FieldDef]
    by_name: dict[str, FieldDef]

    @property
    def is_contacts(self) -> bool:
        """Contacts are keyed by email and render with the contact shape."""
        return self.name == "client_client"

    @property
    def identifier(self) -> FieldDef:
        """The field unique within the object: ``email`` for contacts, ``name`` otherwise."""
        return self.by_name["email" if self.is_contacts else "name"]

    @property
    def object_type(self) -> str:
        """``standard`` or ``pipeline``."""
        return str(self.spec.get("object_type") or "standard")

    @property
    def stages(self) -> list[dict[str, Any]]:
        """Pipeline stages in board order (empty for standard objects)."""
        return sorted(self.spec.get("stages") or [], key=lambda s: s.get("order", 0))

    @property
    def stage_field(self) -> FieldDef | None:
        """The default ``stage`` field of a pipeline object; written only through ``/move``."""
        return self.by_name.get("stage") if self.object_type == "pipeline" else None

    def stage(self, stage_id: str) -> dict[str, Any] | None:
        """A stage by id."""
        return next((s for s in self.stages if s["id"] == stage_id), None)

    def field(self, ref: str) -> FieldDef | None:
        """A field by UUID or API name."""
        return self.by_id.get(ref) or self.by_name.get(ref)

    def minimal(self, base_url: str) -> dict[str, Any]:
        """The list item of ``GET /api/custom-objects`` (CustomMinimalObjectsList)."""
        s = self.spec
        return {
            "fetch_url": "standard",
            "id": self.id,
            "name": self.name,
            "object_type": self.object_type,
            "object_name": s.get("object_name", self.name),
            "entity_name": s.get("entity_name", self.name),
            "rollup_related_leadsources": False,
            "association_source": "direct",
            "has_commerce_data": False,
            "default_on_activities": False,
            "owner": None,
            "description": s.get("description", ""),
            "is_custom": bool(s.get("is_custom", True)),
            "allow_relations": True,
            "created": s.get("created", "2026-01-01T00:00:00.000000+00:00"),
            "access": {"view": True, "edit": True, "remove": True},
            "track_entity_value": False,
            "include_percentage_to_close": False,
            "use_ai_to_update_percentage": False,
            "ai_confidence_threshold": None,
            "allow_on_forms": True,
            "default_color": s.get("default_color", "#4A90E2"),
            "default_icon": s.get("default_icon", "cube"),
            "url": f"{base_url}/api/custom-objects/{self.id}",
        }

    def detail(self, base_url: str, *, embed_fields: bool = True) -> dict[str, Any]:
        """The object with its categories (``GET /api/custom-objects/{id}``).

        Whether Kizen embeds the field list here is unknown (no source shows it); strict
        mode leaves it out so that a client relying on it fails.
        """
        out = self.minimal(base_url)
        out["categories"] = list(self.spec.get("categories", []))
        if self.object_type == "pipeline":
            out["pipeline"] = {"stages": self.stages}
        if embed_fields:
            out["fields"] = [f.public() for f in self.fields]
        return out


@dataclass
class Business:
    """A parsed business file."""

    id: str
    name: str
    team: dict[str, TeamMember]
    objects: list[ObjectDef]
    seed_records: dict[str, list[dict[str, Any]]]
    timezone: str = "UTC"
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_ref: dict[str, ObjectDef] = field(default_factory=dict)
    fields_by_id: dict[str, FieldDef] = field(default_factory=dict)

    def object(self, ref: str) -> ObjectDef | None:
        """An object by UUID or API name."""
        return self.by_ref.get(ref)


def _field(raw: Mapping[str, Any], object_id: str, stages: list[dict[str, Any]]) -> FieldDef:
    spec = {**FIELD_DEFAULTS, **raw}
    spec.setdefault("display_name", spec["name"])
    spec.setdefault("order", 0)
    spec["meta"] = dict(spec.get("meta") or {})
    if spec["field_type"] == "rating" and not spec.get("options"):
        spec["options"] = rating_options(spec["id"], spec.get("rating"))
    if spec["name"] == "stage" and stages and not spec.get("options"):
        spec["options"] = [
            {"id": s["id"], "name": s["name"], "code": s.get("code"), "order": s.get("order", 0)}
            for s in stages
        ]
    fdef = FieldDef(
        id=spec["id"],
        name=spec["name"],
        field_type=spec["field_type"],
        object_id=object_id,
        spec=spec,
    )
    for opt in spec.get("options") or []:
        fdef.options_by_id[opt["id"]] = opt
        fdef.options_by_label[str(opt["name"]).strip().casefold()] = opt
    for tag in spec.get("tags") or []:
        fdef.tags_by_id[tag["id"]] = tag
        fdef.tags_by_label[str(tag["name"]).strip().casefold()] = tag
    return fdef


def _object(raw: Mapping[str, Any]) -> ObjectDef:
    spec = dict(raw)
    stages = list(spec.get("stages") or [])
    fields = [_field(f, spec["id"], stages) for f in spec.pop("fields")]
    fields.sort(key=lambda f: f.spec["order"])
    return ObjectDef(
        id=spec["id"],
        name=spec["name"],
        spec=spec,
        fields=fields,
        by_id={f.id: f for f in fields},
        by_name={f.name: f for f in fields},
    )


def load_business(source: Path | Mapping[str, Any]) -> Business:
    """Parse a business file (or an already loaded mapping).

    Raises:
        ValueError: when an object lacks its identifier field or a relationship points at an
            object the business does not define, so a broken file fails at start-up rather
            than on the first request.
    """
    raw: Mapping[str, Any] = (
        json.loads(Path(source).read_text(encoding="utf-8"))
        if isinstance(source, Path | str)
        else source
    )
    team = {m["id"]: TeamMember(**m) for m in raw.get("team_members", [])}
    objects = [_object(o) for o in raw["objects"]]
    business = Business(
        id=raw["business"]["id"],
        name=raw["business"].get("name", ""),
        team=team,
        objects=objects,
        seed_records={k: list(v) for k, v in raw.get("records", {}).items()},
        timezone=str(raw["business"].get("timezone") or "UTC"),
        files={f["id"]: dict(f) for f in raw.get("files", [])},
    )
    for obj in objects:
        business.by_ref[obj.id] = obj
        business.by_ref[obj.name] = obj
        for f in obj.fields:
            business.fields_by_id[f.id] = f
    for obj in objects:
        if ("email" if obj.is_contacts else "name") not in obj.by_name:
            raise ValueError(f"object {obj.name!r} has no identifier field")
        for f in obj.fields:
            rel = f.relation
            if f.field_type == "relationship" and (
                rel is None or business.object(str(rel.get("related_object"))) is None
            ):
                raise ValueError(f"field {obj.name}.{f.name} relates to an unknown object")
        if obj.object_type == "pipeline" and (not obj.stages or obj.stage_field is None):
            raise ValueError(f"pipeline object {obj.name!r} needs stages and a 'stage' field")
    return business
