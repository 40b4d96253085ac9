"""Labels for option and dynamic-tag ids, so that plans are shown the way people know them.

The plan holds canonical values, and the canonical value of an option, a checkbox or a
dynamic tag is its *id*: that is what Kizen is sent and what ``sync_state`` compares. A person
reading ``kizen-sync plan`` knows "Opted In" and "Partner", not their UUIDs, so display code
looks the ids up here, at display time, and the plan itself stays pure and unchanged.

Only ids that have a label are replaced: related records and team members stay ids (their
"labels" would need one read per record), and an id the lookup does not know is shown as is
rather than hidden.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kizen_sync.models import FieldChange
from kizen_sync.schema import OPTION_TYPES, ObjectSchema

__all__ = ["LabelMap", "change_text", "display_change", "label_of", "value_labels"]

#: Field API name -> id -> label.
LabelMap = Mapping[str, Mapping[str, str]]

#: Field types whose canonical values are ids of the field's own ``options``.
_OPTION_VALUED = OPTION_TYPES | {"checkboxes"}


def value_labels(
    schema: ObjectSchema, tags: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, dict[str, str]]:
    """The labels of every option and dynamic-tag id of an object.

    Args:
        schema: the object's schema (options of option and checkbox fields).
        tags: for dynamic-tag fields, field API name -> tag label -> tag id, as the runner
            loads them for the planner.

    Returns:
        Field API name -> id -> label.
    """
    labels: dict[str, dict[str, str]] = {}
    for field in schema.fields:
        if field.field_type in _OPTION_VALUED and field.options:
            labels[field.name] = {option.id: option.name for option in field.options}
    for name, by_label in (tags or {}).items():
        labels.setdefault(name, {}).update({tag_id: label for label, tag_id in by_label.items()})
    return labels


def label_of(labels: LabelMap, field: str, value: Any) -> Any:
    """``value`` of ``field`` with known ids replaced by labels (lists item by item)."""
    known = labels.get(field)
    if not known or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_one(known, item) for item in value]
    return _one(known, value)


def _one(known: Mapping[str, str], value: Any) -> Any:
    return known.get(value, value) if isinstance(value, str) else value


def display_change(change: FieldChange, labels: LabelMap) -> FieldChange:
    """A copy of ``change`` for display, with option and tag ids shown as their labels."""
    if change.field not in labels:
        return change
    return dataclasses.replace(
        change,
        before=label_of(labels, change.field, change.before),
        after=label_of(labels, change.field, change.after),
        add=tuple(label_of(labels, change.field, list(change.add))),
        remove=tuple(label_of(labels, change.field, list(change.remove))),
    )


def _clip(value: Any, width: int) -> str:
    text = "∅" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def change_text(change: FieldChange, labels: LabelMap | None = None, width: int = 40) -> str:
    """One field change in words: ``before → after``, or the items added (``+``) and removed
    (U+2212 minus) of a multi-valued field, ids shown as labels.

    Shared by the CLI's plan table and the Dagster plan metadata so both read the same. A true
    minus sign, because ``-`` also starts negative numbers and many labels.
    """
    change = display_change(change, labels or {})
    if change.add or change.remove:
        text = " ".join(
            [f"+{v}" for v in change.add] + [f"\N{MINUS SIGN}{v}" for v in change.remove]
        )
    else:
        text = f"{_clip(change.before, width)} → {_clip(change.after, width)}"
    return f"{text}  (mirror)" if change.mirror else text
