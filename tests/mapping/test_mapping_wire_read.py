"""to_wire(), canonical_from_read() and hash_values(); round trips through the emulator's
write validation and read rendering, so the connector and the emulator agree on the wire."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from test_mapping_coerce import FIELDS, MULTI_FILES, REC_A, REC_B, TAGS, TO_MANY, fld, spec

from kizen_sync.emulator.business import FieldDef, TeamMember
from kizen_sync.emulator.values import render, validate_value
from kizen_sync.errors import MappingError
from kizen_sync.mapping import canonical_from_read, coerce, hash_values, record_id, to_wire
from kizen_sync.schema import FieldSchema

ALEX = "916dac1b-5640-4268-9324-06132f342488"
GOLD = FIELDS["dropdown"].options[0].id  # type: ignore[index]


WIRE_CASES: list[tuple[FieldSchema, Any, Any]] = [
    (FIELDS["text"], "Acme", "Acme"),
    (FIELDS["integer"], 42, 42),
    (FIELDS["decimal"], "1.5", 1.5),
    (FIELDS["decimal"], "100", 100),
    (FIELDS["money"], "320.81", 320.81),
    (FIELDS["date"], "2026-03-01", "2026-03-01"),
    (FIELDS["datetime"], "2026-03-01T08:30:00.000000+00:00", "2026-03-01T08:30:00.000000+00:00"),
    (FIELDS["checkbox"], False, False),
    (FIELDS["dropdown"], GOLD, {"id": GOLD}),
    (FIELDS["yesnomaybe"], "y", {"id": "y"}),
    (FIELDS["team_selector"], ALEX, ALEX),  # bare (AE); no source wraps a team member
    (FIELDS["relationship"], REC_A, {"id": REC_A}),
    (FIELDS["files"], REC_A, [REC_A]),  # an array even for a single-file field (AE)
    (FIELDS["rating"], 4, {"id": "r4"}),  # option-backed (live)
    (fld("rating"), 4, 4),  # a rating without options: the number, as Kizen's CLI sends
    (FIELDS["timezone"], "Europe/Paris", "Europe/Paris"),
    (FIELDS["checkboxes"], [GOLD], [GOLD]),
    (TO_MANY, [REC_A, REC_B], [REC_A, REC_B]),
    (MULTI_FILES, [REC_B], [REC_B]),
    (FIELDS["text"], None, None),
    (TO_MANY, None, None),
]


@pytest.mark.parametrize(("field_schema", "canonical", "wire"), WIRE_CASES)
def test_wire_values_follow_the_architecture_decisions(
    field_schema: FieldSchema, canonical: Any, wire: Any
) -> None:
    sent = to_wire(field_schema, canonical)
    assert sent == wire
    assert type(sent) is type(wire)
    json.dumps(sent)  # every wire value is plain JSON


READ_CASES: list[tuple[FieldSchema, Any, Any]] = [
    (FIELDS["money"], {"currency": "USD", "symbol": "$", "amount": 320.81}, "320.81"),
    (FIELDS["money"], {"currency": "USD", "symbol": "$", "amount": "320.810"}, "320.81"),
    (FIELDS["decimal"], 5.0, "5"),
    (FIELDS["decimal"], "1.50", "1.5"),
    (FIELDS["dropdown"], {"id": GOLD, "code": "gold", "name": "Gold"}, GOLD),
    (FIELDS["dropdown"], GOLD, GOLD),
    (FIELDS["team_selector"], {"id": ALEX.upper(), "deleted": False, "first_name": "A"}, ALEX),
    (FIELDS["relationship"], {"id": REC_A, "name": "Acme Corp"}, REC_A),
    (
        FIELDS["datetime"],
        "2026-03-31T12:27:20.152070-05:00",
        "2026-03-31T17:27:20.152070+00:00",
    ),
    (FIELDS["date"], "2026-03-01", "2026-03-01"),
    (FIELDS["phonenumber"], "+13125550100", "+13125550100"),
    (FIELDS["rating"], 4, 4),
    (FIELDS["rating"], {"id": "r4", "code": "4", "name": "4"}, 4),
    (FIELDS["rating"], {"id": "r5"}, 5),
    (FIELDS["rating"], "r2", 2),
    (FIELDS["rating"], {"id": "r1", "code": None, "name": "1 - Low"}, 1),
    (FIELDS["files"], [{"id": REC_A, "name": "a.pdf"}], REC_A),
    (FIELDS["files"], {"id": REC_A}, REC_A),
    (FIELDS["files"], REC_A.upper(), REC_A),
    (MULTI_FILES, {"id": REC_A}, [REC_A]),
    (FIELDS["timezone"], "America/Chicago", "America/Chicago"),
    (FIELDS["timezone"], {"id": "America/Chicago", "name": "America/Chicago"}, "America/Chicago"),
    (FIELDS["checkbox"], True, True),
    (FIELDS["text"], {"value": "wrapped"}, "wrapped"),
    (
        FIELDS["checkboxes"],
        [{"id": "b", "code": None, "name": "B"}, {"id": "a", "code": None, "name": "A"}],
        ["a", "b"],
    ),
    (FIELDS["dynamictags"], [{"id": "t2", "name": "B"}, {"id": "t1", "name": "A"}], ["t1", "t2"]),
    (TO_MANY, [REC_B, REC_A], [REC_A, REC_B]),  # ids paged from field-values
    (TO_MANY, [{"id": REC_B, "name": "Globex"}], [REC_B]),
    (MULTI_FILES, [{"id": REC_A}], [REC_A]),
    (FIELDS["text"], None, None),
    (FIELDS["text"], "", None),
    (TO_MANY, [], None),
]


@pytest.mark.parametrize(("field_schema", "read", "canonical"), READ_CASES)
def test_reads_normalise_to_the_canonical_form(
    field_schema: FieldSchema, read: Any, canonical: Any
) -> None:
    assert canonical_from_read(field_schema, read) == canonical


def test_a_summarized_relationship_must_be_paged_not_read() -> None:
    with pytest.raises(ValueError, match=r"key_contacts.*page a summarized relationship"):
        canonical_from_read(TO_MANY, {"count": 250})


# --- round trip through the emulator ---------------------------------------------------------


@dataclass
class _Resolver:
    team: dict[str, TeamMember] = field(
        default_factory=lambda: {ALEX: TeamMember(ALEX, "Alex", "Example", "alex@example.com")}
    )
    files: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {r: {"id": r, "name": f"{r[-1]}.pdf"} for r in (REC_A, REC_B)}
    )
    timezone: str = "America/Chicago"  # datetimes come back with this zone's offset

    def live_record_exists(self, object_id: str, record_id: str) -> bool:
        return True

    def relation_shape(self, object_id: str, record_id: str) -> dict[str, Any] | None:
        return {"id": record_id, "name": f"record {record_id[-1]}"}


def _emulator_field(f: FieldSchema) -> FieldDef:
    spec_dict = f.model_dump(exclude_none=True)
    options = {o.id: o.model_dump() for o in f.options or []}
    tags = {tag_id: {"id": tag_id, "name": label} for label, tag_id in TAGS.items()}
    return FieldDef(
        id=f.id,
        name=f.name,
        field_type=f.field_type,
        object_id="obj",
        spec=spec_dict,
        options_by_id=options,
        options_by_label={o["name"].casefold(): o for o in options.values()},
        tags_by_id=tags,
        tags_by_label={t["name"].casefold(): t for t in tags.values()},
    )


ROUND_TRIPS: list[tuple[FieldSchema, Any, dict[str, Any]]] = [
    (FIELDS["text"], "Zürich 🚀  ", {}),
    (FIELDS["longtext"], "a\r\nb", {}),
    (FIELDS["wysiwyg"], "<b>x</b>", {}),
    (FIELDS["email"], " Alex@Example.com", {}),
    (FIELDS["phonenumber"], "(312) 555-0100", {}),
    (FIELDS["integer"], "-2147483648", {}),
    (FIELDS["decimal"], "123456.785", {}),
    (FIELDS["decimal"], 0.1, {}),
    (FIELDS["money"], "320.8100", {}),
    (FIELDS["date"], "2026-02-28", {}),
    (FIELDS["datetime"], "2026-11-01 01:30:00", {"timezone": "America/Chicago"}),
    (FIELDS["checkbox"], "no", {}),
    (FIELDS["dropdown"], "gold", {}),
    (FIELDS["radio"], "Silver", {}),
    (FIELDS["choices"], "Bronze", {}),
    (FIELDS["status"], "Gold", {}),
    (FIELDS["selector"], "Gold", {}),
    (FIELDS["yesnomaybe"], True, {}),
    (FIELDS["rating"], 5, {}),
    (FIELDS["timezone"], "Europe/Paris", {}),
    (FIELDS["team_selector"], ALEX.upper(), {}),
    (FIELDS["relationship"], REC_A, {}),
    (FIELDS["files"], REC_B, {}),
    (FIELDS["checkboxes"], "Silver,Gold", {}),
    (FIELDS["dynamictags"], "Expansion, at risk", {}),
    (TO_MANY, [REC_B, REC_A], {}),
    (MULTI_FILES, [REC_A], {}),
]


@pytest.mark.parametrize(("field_schema", "raw", "spec_kw"), ROUND_TRIPS)
def test_emulator_accepts_the_wire_value_and_reads_back_the_same_canonical_value(
    field_schema: FieldSchema, raw: Any, spec_kw: dict[str, Any]
) -> None:
    canonical = coerce(field_schema, spec(**spec_kw), raw, tags=TAGS)
    resolver = _Resolver()
    emulated = _emulator_field(field_schema)
    stored = validate_value(emulated, to_wire(field_schema, canonical), resolver)
    read = json.loads(json.dumps(render(emulated, stored, resolver)))
    assert canonical_from_read(field_schema, read) == canonical


# --- record ids and hashing ------------------------------------------------------------------


def test_record_id_column_values() -> None:
    assert record_id("kizen_id", REC_A.upper()) == REC_A
    assert record_id("kizen_id", None) is None
    assert record_id("kizen_id", float("nan")) is None
    with pytest.raises(MappingError, match="column 'kizen_id' -> field 'id': 'acme' is not a"):
        record_id("kizen_id", "acme")


def test_hash_values_is_keyed_and_stable() -> None:
    values = {"email": "a@example.com", "tags": ["t1", "t2"], "score": "1.5", "n": None}
    first = hash_values(values, b"key-1")
    assert first == hash_values(dict(reversed(values.items())), b"key-1")
    assert first != hash_values(values, b"key-2")
    assert first != hash_values({**values, "score": "1.50"}, b"key-1")
    with pytest.raises(ValueError, match="non-empty key"):
        hash_values(values, b"")
