"""value_labels() / display_change(): plans shown with option and tag labels, not ids."""

from __future__ import annotations

from kizen_sync.mapping.labels import display_change, label_of, value_labels
from kizen_sync.models import FieldChange
from kizen_sync.schema import FieldOption, FieldSchema, ObjectSchema, Relation

OPTED_IN, NOT_OPTED_IN = "9201ea47-0000-4000-8000-000000000001", "f373be02-0000-4000-8000-00002"
CORE, SUPPORT = "opt-core", "opt-support"
PARTNER, NEWSLETTER = "32dfd7fc-0000-4000-8000-000000000001", "5016a7b4-0000-4000-8000-00001"
COMPANY = "7f1e2d3c-0000-4000-8000-000000000002"

SCHEMA = ObjectSchema(
    id="obj",
    name="client_client",
    fields=[
        FieldSchema(id="f1", name="first_name", field_type="text"),
        FieldSchema(
            id="f2",
            name="email_status",
            field_type="dropdown",
            options=[
                FieldOption(id=OPTED_IN, name="Opted In"),
                FieldOption(id=NOT_OPTED_IN, name="Not Opted In"),
            ],
        ),
        FieldSchema(
            id="f3",
            name="products",
            field_type="checkboxes",
            options=[FieldOption(id=CORE, name="Core"), FieldOption(id=SUPPORT, name="Support")],
        ),
        FieldSchema(id="f4", name="tags", field_type="dynamictags"),
        FieldSchema(
            id="f5",
            name="company_primary",
            field_type="relationship",
            relation=Relation(cardinality="many_to_one"),
        ),
    ],
)
TAGS = {"tags": {"Partner": PARTNER, "Newsletter": NEWSLETTER}}
LABELS = value_labels(SCHEMA, TAGS)


def test_labels_cover_options_checkboxes_and_dynamic_tags_only() -> None:
    assert LABELS == {
        "email_status": {OPTED_IN: "Opted In", NOT_OPTED_IN: "Not Opted In"},
        "products": {CORE: "Core", SUPPORT: "Support"},
        "tags": {PARTNER: "Partner", NEWSLETTER: "Newsletter"},
    }


def test_a_single_option_change_shows_labels() -> None:
    change = FieldChange("email_status", before=NOT_OPTED_IN, after=OPTED_IN)
    assert display_change(change, LABELS) == FieldChange(
        "email_status", before="Not Opted In", after="Opted In"
    )


def test_added_and_removed_tags_show_labels() -> None:
    change = FieldChange(
        "tags", before=[NEWSLETTER], after=[PARTNER], add=(PARTNER,), remove=(NEWSLETTER,)
    )
    shown = display_change(change, LABELS)
    assert (shown.add, shown.remove) == (("Partner",), ("Newsletter",))
    assert (shown.before, shown.after) == (["Newsletter"], ["Partner"])


def test_ids_without_labels_and_other_fields_stay_as_they_are() -> None:
    related = FieldChange("company_primary", before=None, after=COMPANY)
    assert display_change(related, LABELS) is related
    text = FieldChange("first_name", before="Ada", after="Augusta Ada")
    assert display_change(text, LABELS) is text
    assert label_of(LABELS, "tags", ["unknown-tag", PARTNER]) == ["unknown-tag", "Partner"]
    assert label_of(LABELS, "email_status", None) is None
