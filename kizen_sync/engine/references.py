"""What a run looks up in Kizen before it plans a chunk: related records and dynamic tags.

Warehouses hold the *names* of related things, not Kizen's UUIDs. A relationship column may
therefore hold the related record's identifier (its name; e-mail for contacts): the run looks
each distinct identifier up once (``GET /api/records/{object}/lookup``) and remembers the
answer, found or not, for the rest of the run. A dynamic tag that does not exist yet fails
its row with a message naming the tag, unless the sync sets ``create_missing_tags: true``:
then the planner gets a placeholder id for it, and the tag is created (``POST
/api/custom-objects/{object}/fields/{field}/options``, as Kizen's CLI adds field options) only
once the guards have passed, right before the first write; a dry run creates nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kizen_sync import mapping
from kizen_sync.client import KizenClient
from kizen_sync.config import SyncConfig
from kizen_sync.errors import KizenValidationError
from kizen_sync.mapping.common import UUID_RE
from kizen_sync.schema import ObjectSchema

__all__ = ["NEW_TAG", "References"]

#: Prefix of the placeholder id of a tag the run will create (never sent to Kizen).
NEW_TAG = "new-tag:"


def _fold(label: str) -> str:
    return label.strip().casefold()


@dataclass
class References:
    """One run's lookups (see the module docstring).

    Attributes:
        tags: field API name -> tag label -> tag id (placeholders for tags to create).
        related: field API name -> related record identifier -> record id (found ones).
        lookups: lookup requests made so far.
    """

    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    related: dict[str, dict[str, str]] = field(default_factory=dict)
    lookups: int = 0
    _absent: dict[str, set[str]] = field(default_factory=dict)
    _pending: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def pending_tags(self) -> dict[str, list[str]]:
        """Labels of the tags this run will create, by field API name."""
        return {name: sorted(labels) for name, labels in self._pending.items() if labels}

    async def prepare(
        self,
        client: KizenClient,
        schema: ObjectSchema,
        sync: SyncConfig,
        rows: Iterable[Mapping[str, Any]],
    ) -> None:
        """Look up the related records named in ``rows`` and note missing tags."""
        wanted: dict[tuple[str, str], set[str]] = {}  # (field, related object) -> identifiers
        for spec in sync.fields:
            target = schema.field(spec.field)
            if target is None:
                continue
            if target.field_type == "relationship" and target.relation is not None:
                related_object = (
                    target.relation.related_object_object_name or target.relation.related_object
                )
                if not related_object:
                    continue
                known = self.related.setdefault(target.name, {})
                absent = self._absent.setdefault(target.name, set())
                for row in rows:
                    for item in mapping.item_texts(target, spec, row.get(spec.column)):
                        if not UUID_RE.match(item) and item not in known and item not in absent:
                            wanted.setdefault((target.name, related_object), set()).add(item)
            elif (
                target.field_type == "dynamictags"
                and spec.match == "label"
                and sync.create_missing_tags
            ):
                self._note_missing_tags(target.name, spec, target, rows)
        await self._look_up(client, wanted)

    def _note_missing_tags(
        self, name: str, spec: Any, target: Any, rows: Iterable[Mapping[str, Any]]
    ) -> None:
        tags = self.tags.setdefault(name, {})
        known = {_fold(label) for label in tags}
        for row in rows:
            for label in mapping.item_texts(target, spec, row.get(spec.column)):
                if label and _fold(label) not in known:
                    placeholder = f"{NEW_TAG}{label}"
                    tags[label] = placeholder
                    self._pending.setdefault(name, {})[label] = placeholder
                    known.add(_fold(label))

    async def _look_up(
        self, client: KizenClient, wanted: Mapping[tuple[str, str], set[str]]
    ) -> None:
        jobs = [
            (name, related_object, identifier)
            for (name, related_object), identifiers in wanted.items()
            for identifier in sorted(identifiers)
        ]
        if not jobs:
            return
        found = await asyncio.gather(
            *(client.lookup_record(obj, identifier) for _, obj, identifier in jobs)
        )
        self.lookups += len(jobs)
        for (name, _, identifier), record in zip(jobs, found, strict=True):
            if record is None:
                self._absent[name].add(identifier)
            else:
                self.related[name][identifier] = record.id

    async def create_pending(self, client: KizenClient, schema: ObjectSchema) -> int:
        """Create the tags noted as missing; replace their placeholders. Returns how many."""
        created = 0
        for name, labels in self._pending.items():
            target = schema.field(name)
            if target is None:
                continue
            for label in list(labels):
                try:
                    tag = await client.add_field_option(schema.id, target.id, label)
                except KizenValidationError:
                    # Created meanwhile by someone else: take the existing one.
                    listed = await client.list_dynamic_tags(schema.name, target.id)
                    match = next((t for t in listed if _fold(t.name) == _fold(label)), None)
                    if match is None:
                        raise
                    tag = match
                else:
                    created += 1
                self.tags[name][label] = tag.id
                del labels[label]
        return created
