"""What the evidence says about each request a client may send to Kizen.

The connector has only ever talked to this emulator, and the emulator was written to the same
assumptions as the connector: when both agree on something real Kizen does differently, every
test passes and the first real sync fails. This module is the check against that. It knows
the routes, query parameters, body keys and ``fields`` entry shapes that a source shows, and
grades every request it is shown:

==============  ===========================================================================
``confirmed``   seen working against live Kizen (Kizen's CLI drift tests, the live captures)
``documented``  a Kizen source describes it; not seen live
``unverified``  sources disagree, or it is only inferred (e.g. clearing with ``null`` from
                the ``allows_nulls`` flag)
``unsupported`` no source shows it, or a source shows Kizen refusing it
==============  ===========================================================================

Sources (``docs/architecture.md``, "Wire shapes", cites each line): **BC** Kizen's CLI
``kizen/builder-cli``, **AE** ``kizen/app-engine`` ``docs/05-platform-api.md``, **SEED** the
seed page and its OpenAPI, **LIVE** the captures in ``spec/kizen-live``.

Two users: the :class:`~kizen_sync.emulator.proxy.ValidatingProxy` in front of the emulator
records every ``unsupported`` request of a test (the test then fails), and the emulator's
``strict`` knob refuses ``unverified`` and ``unsupported`` requests, so that a run against a
strict emulator shows every place where a sync depends on an unverified shape.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from kizen_sync.emulator.business import Business, FieldDef, ObjectDef

__all__ = ["Finding", "Tier", "check_request", "known_route"]


class Tier(enum.IntEnum):
    """How well a source supports a request shape (higher is worse)."""

    CONFIRMED = 0
    DOCUMENTED = 1
    UNVERIFIED = 2
    UNSUPPORTED = 3

    @property
    def label(self) -> str:
        """The word used in messages and in docs/architecture.md."""
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One part of a request that is not (well) supported by the evidence.

    Attributes:
        tier: ``UNVERIFIED`` or ``UNSUPPORTED``.
        route: ``METHOD /template`` of the request (``(unknown route)`` when none matched).
        what: the shape, in words.
        why: what the sources say.
        entry: position in the request's ``fields`` list, when an entry is at fault.
        status: the status strict mode answers with (403 where a source saw Kizen answer it).
    """

    tier: Tier
    route: str
    what: str
    why: str
    entry: int | None = None
    status: int = 400

    def __str__(self) -> str:
        where = f" (fields[{self.entry}])" if self.entry is not None else ""
        return f"{self.tier.label}: {self.route}{where}: {self.what}; {self.why}"


@dataclass(frozen=True)
class _Route:
    method: str
    template: str
    tier: Tier
    source: str
    query: frozenset[str] = frozenset()
    body: frozenset[str] | None = None  # allowed JSON keys; None = no body
    writes_fields: bool = False
    creates: bool = False

    @property
    def regex(self) -> re.Pattern[str]:
        pattern = re.escape(self.template)
        pattern = pattern.replace(r"\{uuid\}", _UUID).replace(r"\{object\}", "[^/]+")
        return re.compile(f"^{pattern}$")


_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_UUID_RE = re.compile(f"^{_UUID}$")
_PAGING = frozenset({"page", "page_size"})
_FIELD_SELECTION = frozenset({"field_ids", "field_names"})

_ROUTES: tuple[_Route, ...] = (
    _Route(
        "GET",
        "/api/custom-objects",
        Tier.DOCUMENTED,
        "AE 3; BC custom_objects.list_objects",
        query=_PAGING
        | {
            "custom_only",
            "name",
            "object_name",
            "is_custom",
            "object_type",
            "default_on_activities",
            "allow_relations",
            "search",
            "ordering",
        },
    ),
    _Route(
        "GET",
        "/api/custom-objects/{uuid}/fields",
        Tier.DOCUMENTED,
        "BC custom_objects.list_fields (always by UUID); AE 4",
    ),
    _Route("GET", "/api/custom-objects/{object}", Tier.DOCUMENTED, "AE 3 (UUID or API name)"),
    _Route(
        "GET",
        "/api/pipelines/{uuid}/fields/{uuid}/tags",
        Tier.DOCUMENTED,
        "BC schema.get_field_tags (custom objects, addressed by UUID)",
        query=_PAGING | {"search", "ordering"},
    ),
    _Route(
        "GET",
        "/api/client/fields/{uuid}/tags",
        Tier.DOCUMENTED,
        "BC schema.get_field_tags (contacts)",
        query=_PAGING | {"search", "ordering"},
    ),
    _Route(
        "POST",
        "/api/custom-objects/{uuid}/fields/{uuid}/options",
        Tier.DOCUMENTED,
        "LIVE contract 'add field option' (201); BC custom_objects.add_field_option, also for "
        "dynamictags (planners.fields _OPTION_FIELD_TYPES)",
        body=frozenset({"name", "order", "meta"}),
    ),
    _Route(
        "GET",
        "/api/pipelines/{uuid}/stages",
        Tier.DOCUMENTED,
        "BC pipelines.list_stages",
        query=frozenset({"ordering"}),
    ),
    _Route("GET", "/api/business/mine", Tier.DOCUMENTED, "AE 7", query=frozenset({"v2"})),
    _Route(
        "GET",
        "/api/records/{object}/lookup",
        Tier.DOCUMENTED,
        "AE 5 lookup; official lookup page",
        query=_FIELD_SELECTION | {"identifier", "all_fields"},
    ),
    _Route(
        "POST",
        "/api/records/{object}/search",
        Tier.CONFIRMED,
        "BC records.search_records (field_names confirmed live 2026-08-13); AE 5",
        query=_PAGING | {"search", "ordering", "group_id", "in_group_ids", "not_in_group_ids"},
        body=_FIELD_SELECTION
        | {"query", "and", "search_within_field_names", "search_within_field_ids"},
    ),
    _Route(
        "POST",
        "/api/records/{object}/add",
        Tier.CONFIRMED,
        "BC drift test_create_record (live); live contract",
        body=frozenset({"fields", "unarchive"}),
        writes_fields=True,
        creates=True,
    ),
    _Route(
        "POST",
        "/api/records/{object}/upsert",
        Tier.CONFIRMED,
        "BC drift test_upsert_* (live); live contract",
        query=frozenset({"return_all_fields"}),
        body=frozenset(
            {"lookup_value", "fields", "oncreate_unarchive", "onupdate_archived_conflict"}
        ),
        writes_fields=True,
        creates=True,
    ),
    _Route(
        "GET",
        "/api/records/{uuid}/field-values/{uuid}",
        Tier.DOCUMENTED,
        "SEED OpenAPI; BC records.field_values",
        query=_PAGING | {"search"},
    ),
    _Route(
        "PATCH",
        "/api/records/{object}/{uuid}/unarchive",
        Tier.CONFIRMED,
        "BC records.md (live 2026-08-13), no body",
    ),
    _Route(
        "PATCH",
        "/api/records/{object}/{uuid}/move",
        Tier.DOCUMENTED,
        "AE 5 move; BC pipelines.move_record",
        body=frozenset({"stage_id", "move_before_record_id", "move_after_record_id"}),
    ),
    _Route(
        "GET",
        "/api/records/{object}/{uuid}",
        Tier.DOCUMENTED,
        "SEED OpenAPI; BC records.get_record",
        query=_FIELD_SELECTION
        | {"field_category", "include_hidden_fields", "detail_summary", "all_fields"},
    ),
    _Route(
        "PATCH",
        "/api/records/{object}/{uuid}",
        Tier.CONFIRMED,
        "BC drift test_update_record (live); live contract",
        query=frozenset({"return_all_fields"}),
        body=frozenset({"fields", "archived_conflict"}),
        writes_fields=True,
    ),
    _Route(
        "PUT",
        "/api/records/{object}/{uuid}",
        Tier.DOCUMENTED,
        "SEED OpenAPI",
        body=frozenset({"fields", "archived_conflict"}),
        writes_fields=True,
    ),
    _Route(
        "DELETE",
        "/api/records/{object}/{uuid}",
        Tier.CONFIRMED,
        "BC records.md (live 2026-08-13); live contract",
    ),
)
_COMPILED = tuple((route, route.regex) for route in _ROUTES)

#: What each source says about multi-valued writes (quoted in every finding about them).
_MULTI_WHY = (
    "AE documents bare ids, Kizen's CLI sends lists of {id} objects, and neither is seen live"
)
_TEXT_TYPES = frozenset(
    {"text", "longtext", "wysiwyg", "email", "phonenumber", "date", "datetime", "timezone"}
)
_OPTION_TYPES = frozenset({"dropdown", "radio", "choices", "status", "yesnomaybe"})


def _route(method: str, path: str) -> tuple[_Route | None, list[str]]:
    for route, regex in _COMPILED:
        if route.method == method and (match := regex.match(path)):
            return route, list(match.groups())
    return None, []


def known_route(method: str, path: str) -> bool:
    """Whether a source shows this route (method and concrete path)."""
    return _route(method, path)[0] is not None


def _object_ref(path: str) -> str | None:
    parts = path.split("/")
    return parts[3] if len(parts) > 3 and parts[2] == "records" else None


def check_request(
    method: str,
    path: str,
    query: Iterable[str],
    body: Any,
    business: Business,
) -> list[Finding]:
    """Every part of one request that the evidence does not confirm or document.

    Args:
        method: HTTP method.
        path: URL path (no query string).
        query: names of the query parameters sent.
        body: the decoded JSON body (``None`` when there was none).
        business: the emulated business, for the field types of ``fields`` entries.

    Returns:
        Findings, ``UNVERIFIED`` or ``UNSUPPORTED`` only; empty when everything is confirmed
        or documented.
    """
    if not path.startswith("/api/"):
        return []
    route, _ = _route(method, path)
    if route is None:
        what = f"{method} {path}"
        why = "no source shows this route"
        if method == "GET" and re.match(r"^/api/custom-objects/[^/]+/fields(/.*)?$", path):
            why = "Kizen's CLI lists fields and tags by the object's UUID only"
        return [Finding(Tier.UNSUPPORTED, "(unknown route)", what, why)]
    name = f"{route.method} {route.template}"
    findings = [
        Finding(
            Tier.UNSUPPORTED, name, f"query parameter {q!r}", f"not among those of {route.source}"
        )
        for q in sorted(set(query) - route.query)
    ]
    if route.body is None:
        if body not in (None, {}):
            findings.append(Finding(Tier.UNSUPPORTED, name, "a request body", "sent with none"))
        return findings
    if body is None:
        return findings
    if not isinstance(body, Mapping):
        return [*findings, Finding(Tier.UNSUPPORTED, name, "a body that is not an object", "")]
    findings.extend(
        Finding(
            Tier.UNSUPPORTED,
            name,
            f"body key {key!r}",
            f"not among those of {route.source} (Kizen ignores undeclared keys, BC)",
        )
        for key in sorted(set(body) - route.body)
    )
    if route.writes_fields:
        ref = _object_ref(path)
        obj = business.object(ref) if ref else None
        entries = body.get("fields")
        if obj is not None and isinstance(entries, list):
            findings.extend(_check_entries(name, obj, entries, creates=route.creates))
    return findings


def _check_entries(
    route: str, obj: ObjectDef, entries: list[Any], *, creates: bool
) -> list[Finding]:
    findings: list[Finding] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        for tier, what, why, status in _check_entry(obj, entry, seen, creates=creates):
            findings.append(Finding(tier, route, what, why, entry=index, status=status))
    return findings


_Result = tuple[Tier, str, str, int]


def _check_entry(obj: ObjectDef, entry: Any, seen: set[str], *, creates: bool) -> Iterable[_Result]:
    if not isinstance(entry, Mapping):
        yield Tier.UNSUPPORTED, "an entry that is not an object", "", 400
        return
    extra = set(entry) - {"name", "id", "value", "add_values", "remove_values"}
    if extra:
        yield Tier.UNSUPPORTED, f"entry keys {sorted(extra)}", "AE 5 lists the entry keys", 400
    has_name, has_id = "name" in entry, "id" in entry
    if has_name == has_id:
        yield Tier.UNSUPPORTED, "an entry without exactly one of name/id", "AE 5", 400
        return
    f = obj.by_name.get(entry["name"]) if has_name else obj.by_id.get(str(entry["id"]).lower())
    if f is None:
        return  # an unknown field is Kizen's 400 to give, not a shape question
    if f.id in seen:
        yield (
            Tier.UNSUPPORTED,
            f"two entries for field {f.name!r} in one request",
            "no source shows more than one entry per field",
            400,
        )
    seen.add(f.id)
    if creates and has_name and obj.is_contacts:
        yield (
            Tier.UNSUPPORTED,
            f"creating a contact with a name-keyed entry ({f.name!r})",
            "AE saw this answer 403 for service accounts; entries by field id work",
            403,
        )
    kinds = [k for k in ("value", "add_values", "remove_values") if k in entry]
    if len(kinds) != 1:
        yield Tier.UNSUPPORTED, "an entry without exactly one of value/add/remove", "AE 5", 400
        return
    yield from _check_value(obj, f, kinds[0], entry[kinds[0]])


def _check_value(obj: ObjectDef, f: FieldDef, kind: str, value: Any) -> Iterable[_Result]:
    label = f"{f.name} ({f.field_type})"
    if f.spec.get("is_read_only") or f.name in ("created", "updated", "display_name"):
        yield Tier.UNSUPPORTED, f"a write to {label}", "Kizen computes this field", 400
        return
    if f is obj.stage_field:
        yield (
            Tier.UNSUPPORTED,
            f"a write to {label} through fields",
            "stages change through PATCH .../move (AE, BC)",
            400,
        )
        return
    if kind != "value":
        if not f.multi:
            yield Tier.UNSUPPORTED, f"{kind} on single-valued {label}", "AE 5", 400
        else:
            yield Tier.UNVERIFIED, f"{kind} on {label}", _MULTI_WHY, 400
        return
    if value is None:
        if f.spec.get("allows_nulls", True):
            yield (
                Tier.UNVERIFIED,
                f"clearing {label} with null",
                "only inferred from the field's allows_nulls flag",
                400,
            )
        else:
            yield Tier.UNSUPPORTED, f"null for {label}", "the field has allows_nulls false", 400
        return
    yield from _check_type(f, label, value)


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _is_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"id"} and _is_id(value["id"])


def _places(value: Any) -> int:
    try:
        exponent = Decimal(str(value)).normalize().as_tuple().exponent
    except InvalidOperation:
        return 0
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _check_type(f: FieldDef, label: str, value: Any) -> Iterable[_Result]:
    kind = f.field_type
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "files":
        if not isinstance(value, list) or not all(_is_id(v) for v in value):
            yield (
                Tier.UNSUPPORTED,
                f"{label} as {type(value).__name__}",
                ("AE: an array of uploaded-file ids"),
                400,
            )
        return
    if kind in ("checkboxes", "dynamictags") or (kind == "relationship" and f.multi):
        yield Tier.UNVERIFIED, f"a list value for {label}", _MULTI_WHY, 400
        return
    if kind in _TEXT_TYPES:
        if not isinstance(value, str):
            yield Tier.UNSUPPORTED, f"{label} as {type(value).__name__}", "AE 5: a string", 400
        return
    if kind in ("integer", "decimal", "money"):
        places = {"integer": 0, "money": 2}.get(
            kind, int((f.spec.get("decimal_options") or {}).get("decimal_places", 2))
        )
        if not number:
            yield Tier.UNSUPPORTED, f"{label} as {type(value).__name__}", "AE 5: a number", 400
        elif _places(value) > places:
            yield (
                Tier.UNSUPPORTED,
                f"{label} with {_places(value)} decimal places (the field keeps {places})",
                "Kizen may refuse rather than round; round before sending",
                400,
            )
        return
    if kind == "checkbox":
        if not isinstance(value, bool):
            yield Tier.UNSUPPORTED, f"{label} as {type(value).__name__}", "BC: a boolean", 400
        return
    if kind == "team_selector":
        if _is_ref(value):
            yield (
                Tier.UNSUPPORTED,
                f'{label} as {{"id": ...}}',
                "AE shows a bare employee id; no source wraps it",
                400,
            )
        elif not _is_id(value):
            yield Tier.UNSUPPORTED, f"{label} as {type(value).__name__}", "AE 5", 400
        return
    if kind == "rating":
        # Ratings are option-backed (BC field.md, live), but no source shows a rating
        # *written*: AE's table of write formats has no rating row, and BC's planner sends a
        # bare number that its drift tests never exercise. Both forms are inferences.
        if number:
            yield (
                Tier.UNVERIFIED,
                f"{label} as a number",
                "Kizen's CLI sends one (not seen live), but ratings are option-backed (live)",
                400,
            )
        elif _is_ref(value) or _is_id(value):
            yield (
                Tier.UNVERIFIED,
                f"{label} as an option",
                "inferred from the rating's options (live); no source shows a rating written",
                400,
            )
        else:
            yield (
                Tier.UNSUPPORTED,
                f"{label} as {type(value).__name__}",
                'ratings are option-backed (live): an option {"id": ...} or a number',
                400,
            )
        return
    if kind == "selector":
        yield Tier.UNVERIFIED, f"a value for {label}", "no source describes selector fields", 400
        return
    if kind in _OPTION_TYPES or kind == "relationship":
        named = isinstance(value, Mapping) and set(value) == {"name"} and kind != "relationship"
        if not (_is_ref(value) or _is_id(value) or named):
            yield (
                Tier.UNSUPPORTED,
                f"{label} as {type(value).__name__}",
                ('AE: a bare id; BC: {"id": ...} (options also {"name": label})'),
                400,
            )
        return
