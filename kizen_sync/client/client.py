"""The async Kizen API client: one method per endpoint the connector uses.

Every method goes through :class:`~kizen_sync.client.session.Session`, so each request is
paced, classified into the kizen-sync error tree, retried when that is safe, counted in
``client.stats`` and reported to :func:`~kizen_sync.client.capture_attempts`.

Example::

    async with KizenClient(ClientSettings.from_env()) as kizen:
        entries = [{"name": "tier", "value": {"id": gold_option_id}}]
        record = await kizen.patch_record("accounts", record_id, entries)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from kizen_sync.client.attempts import ClientStats
from kizen_sync.client.models import (
    FieldValueItem,
    ObjectSummary,
    Page,
    Record,
    Tag,
    UpsertAction,
    UpsertResult,
)
from kizen_sync.client.session import Session
from kizen_sync.errors import KizenValidationError, NotFoundError
from kizen_sync.schema import FieldSchema, ObjectSchema
from kizen_sync.settings import ClientSettings

__all__ = ["Entry", "KizenClient"]

#: One element of the wire ``fields`` list:
#: ``{"name"|"id": ..., "value"|"add_values"|"remove_values": ...}``.
Entry = Mapping[str, Any]

T = TypeVar("T")

_CONTACTS = "client_client"
_MAX_PAGES = 100_000  # a bound on pagination loops; ~10^7-10^8 rows at Kizen's page sizes


def _field_list(raw: Any, path: str) -> list[FieldSchema]:
    """Fields from ``GET /api/custom-objects/{uuid}/fields``: a bare array (AE), tolerating
    a paged envelope; an entry Kizen sends without what a field needs fails loudly, since
    a partial schema would make valid mappings look wrong.
    """
    if isinstance(raw, Mapping):
        raw = raw.get("results") or []
    if not isinstance(raw, list):
        raise KizenValidationError(
            f"unexpected field list: {type(raw).__name__}", method="GET", path=path, body=raw
        )
    try:
        return [FieldSchema.model_validate(f) for f in raw if isinstance(f, Mapping)]
    except ValidationError as exc:
        raise KizenValidationError(
            f"unexpected field list entry: {exc.errors()[0]['msg']}", method="GET", path=path
        ) from None


def _seg(value: str) -> str:
    """Quote one path segment (object names and ids never need it, but never trust input)."""
    return quote(str(value), safe="")


def _csv(values: Sequence[str] | None) -> str | None:
    return None if values is None else ",".join(values)


def _params(**values: str | int | bool | None) -> dict[str, str | int | bool]:
    """Query parameters without the unset ones; booleans as ``true``/``false``."""
    out: dict[str, str | int | bool] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return out


class KizenClient:
    """Async client for the Kizen records and schema API.

    Use as an async context manager; it owns its connection pools until closed.

    Args:
        settings: connection, pacing and retry settings.
        transport: optional httpx transport (``httpx.ASGITransport(app=emulator.app)`` or a
            ``MockTransport``) instead of the network.
    """

    def __init__(
        self, settings: ClientSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._session = Session(settings, transport)
        self._schemas: dict[str, ObjectSchema] = {}
        self._schema_lock = asyncio.Lock()

    def __repr__(self) -> str:
        s = self.settings
        return f"KizenClient(base_url={s.base_url!r}, business_id={s.business_id!r})"

    async def __aenter__(self) -> KizenClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close all connections."""
        await self._session.aclose()

    @property
    def stats(self) -> ClientStats:
        """Counters: requests, statuses, retries, 429s, pacing and backoff waits."""
        return self._session.stats

    # --- records by id ---------------------------------------------------------------------

    async def get_record(
        self,
        object: str,
        record_id: str,
        *,
        field_ids: Sequence[str] | None = None,
        field_names: Sequence[str] | None = None,
        field_category: Sequence[str] | None = None,
        include_hidden_fields: bool | None = None,
        detail_summary: bool | None = None,
    ) -> Record:
        """``GET /api/records/{object}/{id}``; NotFoundError when archived or unknown."""
        params = _params(
            field_ids=_csv(field_ids),
            field_names=_csv(field_names),
            field_category=_csv(field_category),
            include_hidden_fields=include_hidden_fields,
            detail_summary=detail_summary,
        )
        data = await self._session.call("GET", self._record_path(object, record_id), params=params)
        return Record.from_wire(data)

    async def patch_record(
        self,
        object: str,
        record_id: str,
        entries: Sequence[Entry],
        *,
        return_all_fields: bool = False,
        archived_conflict: str | None = None,
    ) -> Record:
        """``PATCH /api/records/{object}/{id}``: set, add or remove values of some fields.

        Retried on 429/5xx/dropped connections: the connector's bodies are absolute values
        and set operations, so applying one twice leaves the same state.
        """
        body = self._write_body(entries, archived_conflict=archived_conflict)
        params = _params(return_all_fields=True) if return_all_fields else None
        data = await self._session.call(
            "PATCH",
            self._record_path(object, record_id),
            params=params,
            json=body,
            entries=self._named(object, entries),
        )
        return Record.from_wire(data, record_id=record_id)

    async def archive_record(self, object: str, record_id: str) -> None:
        """``DELETE /api/records/{object}/{id}`` (204). NotFoundError if already archived."""
        await self._session.call("DELETE", self._record_path(object, record_id))

    async def unarchive_record(self, object: str, record_id: str) -> Record:
        """``PATCH /api/records/{object}/{id}/unarchive`` (no body; route confirmed live).

        What Kizen answers on success is unknown, so nothing is required of it: a 2xx alone
        means restored, and the record returned holds what the answer carried (possibly
        nothing but the id that was addressed).
        """
        data = await self._session.call(
            "PATCH", f"{self._record_path(object, record_id)}/unarchive"
        )
        return Record.from_wire(data, record_id=record_id)

    # --- create, lookup, upsert ------------------------------------------------------------

    async def create_record(
        self, object: str, entries: Sequence[Entry], *, unarchive: str | None = None
    ) -> Record:
        """``POST /api/records/{object}/add``.

        Not idempotent: after a 5xx or a dropped connection the record may exist, so only
        429 and never-sent requests are retried. Prefer :meth:`upsert_record`.
        """
        body: dict[str, Any] = {"fields": list(entries)}
        if unarchive is not None:
            body["unarchive"] = unarchive
        data = await self._session.call(
            "POST",
            f"/api/records/{_seg(object)}/add",
            json=body,
            entries=self._named(object, entries),
            idempotent=False,
        )
        return Record.from_wire(data)

    async def lookup_record(
        self, object: str, identifier: str, *, field_names: Sequence[str] | None = None
    ) -> Record | None:
        """``GET /api/records/{object}/lookup?identifier=``: ``None`` only on a real 404.

        Any other failure (timeout, 403, 5xx) raises, because creating a record after such an
        answer could duplicate one that exists.
        """
        params = _params(identifier=identifier, field_names=_csv(field_names))
        try:
            data = await self._session.call(
                "GET", f"/api/records/{_seg(object)}/lookup", params=params
            )
        except NotFoundError:
            return None
        return Record.from_wire(data)

    async def upsert_record(
        self,
        object: str,
        lookup_value: str,
        entries: Sequence[Entry],
        *,
        oncreate_unarchive: str | None = None,
        onupdate_archived_conflict: str | None = None,
        return_all_fields: bool = False,
    ) -> UpsertResult:
        """``POST /api/records/{object}/upsert``: match on name (contacts: email), create or update.

        Idempotent in effect (a repeat matches the record the first call created), so it is
        retried like a PATCH.
        """
        body: dict[str, Any] = {"lookup_value": lookup_value, "fields": list(entries)}
        if oncreate_unarchive is not None:
            body["oncreate_unarchive"] = oncreate_unarchive
        if onupdate_archived_conflict is not None:
            body["onupdate_archived_conflict"] = onupdate_archived_conflict
        params = _params(return_all_fields=True) if return_all_fields else None
        data = await self._session.call(
            "POST",
            f"/api/records/{_seg(object)}/upsert",
            params=params,
            json=body,
            entries=self._named(object, entries),
        )
        action = cast(UpsertAction, data.get("action") or "updated")
        return UpsertResult(record=Record.from_wire(data), action=action)

    # --- search and paging -----------------------------------------------------------------

    async def search_records(
        self,
        object: str,
        *,
        page: int = 1,
        page_size: int = 100,
        field_names: Sequence[str] | None = None,
        search: str | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Page[Record]:
        """``POST /api/records/{object}/search``: one page.

        Args:
            object: object API name or id.
            page: 1-based page number.
            page_size: rows per page (Kizen allows up to 1000).
            field_names: fields to return per row (default: all).
            search: free-text search.
            query: filter body (``{"and": ..., "query": [...]}``), merged into the JSON body.

        Raises:
            KizenValidationError: Kizen answered with a non-empty ``errors`` list.
        """
        body: dict[str, Any] = dict(query or {})
        if field_names is not None:
            body["field_names"] = list(field_names)
        params = _params(page=page, page_size=page_size, search=search)
        data = await self._session.call(
            "POST", f"/api/records/{_seg(object)}/search", params=params, json=body
        )
        result = Page.from_wire(data, Record.from_wire)
        if result.errors:
            raise KizenValidationError(
                "search rejected: " + "; ".join(result.errors),
                non_field_errors=result.errors,
                status=200,
                method="POST",
                path=f"/api/records/{_seg(object)}/search",
                body=data,
            )
        return result

    async def iter_records(
        self,
        object: str,
        *,
        page_size: int = 100,
        field_names: Sequence[str] | None = None,
        search: str | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Record]:
        """Every record of a search, page by page (page numbers, not Kizen's ``next`` URL)."""

        async def fetch(page: int) -> Page[Record]:
            return await self.search_records(
                object,
                page=page,
                page_size=page_size,
                field_names=field_names,
                search=search,
                query=query,
            )

        async for record in self._paginate(fetch):
            yield record

    async def iter_field_values(
        self, record_id: str, field_id: str, *, search: str | None = None, page_size: int = 100
    ) -> AsyncIterator[FieldValueItem]:
        """All values of one (summarized) relationship field of a record."""

        async def fetch(page: int) -> Page[FieldValueItem]:
            return await self.field_values_page(
                record_id, field_id, page=page, page_size=page_size, search=search
            )

        async for item in self._paginate(fetch):
            yield item

    async def field_values_page(
        self,
        record_id: str,
        field_id: str,
        *,
        page: int = 1,
        page_size: int = 100,
        search: str | None = None,
    ) -> Page[FieldValueItem]:
        """``GET /api/records/{id}/field-values/{field_id}``: one page."""
        path = f"/api/records/{_seg(record_id)}/field-values/{_seg(field_id)}"
        params = _params(page=page, page_size=page_size, search=search)
        data = await self._session.call("GET", path, params=params)
        return Page.from_wire(data, FieldValueItem.from_wire)

    async def _paginate(self, fetch: Callable[[int], Awaitable[Page[T]]]) -> AsyncIterator[T]:
        """Follow page numbers while Kizen says there is a ``next`` page.

        ``next`` is an absolute URL that may name another host than the one configured
        (proxies, regional hosts), so only its presence is used.
        """
        for page_no in range(1, _MAX_PAGES + 1):
            page = await fetch(page_no)
            for item in page.results:
                yield item
            if not page.next or not page.results:
                return

    # --- objects, schema, tags -------------------------------------------------------------

    async def list_objects_page(
        self, *, custom_only: bool = False, page_size: int = 1
    ) -> Page[ObjectSummary]:
        """One page of ``GET /api/custom-objects``: the cheapest authenticated read, which
        tells reachability, TLS and credentials (401 vs 403) apart.
        """
        params = _params(custom_only=custom_only, page=1, page_size=page_size)
        data = await self._session.call("GET", "/api/custom-objects", params=params)
        return Page.from_wire(data, ObjectSummary.from_wire)

    async def list_objects(self, *, custom_only: bool = False) -> list[ObjectSummary]:
        """``GET /api/custom-objects``, all pages; contacts only with ``custom_only=False``."""

        async def fetch(page: int) -> Page[ObjectSummary]:
            params = _params(custom_only=custom_only, page=page, page_size=100)
            data = await self._session.call("GET", "/api/custom-objects", params=params)
            if isinstance(data, list):  # an unpaginated answer
                return Page(len(data), None, None, [ObjectSummary.from_wire(d) for d in data])
            return Page.from_wire(data, ObjectSummary.from_wire)

        return [obj async for obj in self._paginate(fetch)]

    async def get_object_schema(self, object_name_or_id: str) -> ObjectSchema:
        """The object with its fields, fetched once per client (i.e. per run) and cached.

        Two requests, as Kizen's own CLI makes them: the object detail (which accepts the
        API name or the UUID, AE) for the object's UUID and type, then
        ``GET /api/custom-objects/{uuid}/fields`` for the fields. Whether the detail embeds a
        complete field list is unknown (a permission-filtered or partial one would make the
        schema silently incomplete), so an embedded list is never used.
        """
        cached = self._schemas.get(object_name_or_id)
        if cached is not None:
            return cached
        async with self._schema_lock:
            cached = self._schemas.get(object_name_or_id)
            if cached is not None:
                return cached
            obj = await self._session.call("GET", f"/api/custom-objects/{_seg(object_name_or_id)}")
            path = f"/api/custom-objects/{_seg(obj['id'])}/fields"
            fields = _field_list(await self._session.call("GET", path), path)
            schema = ObjectSchema.model_validate({**obj, "fields": fields})
            self._schemas[schema.id] = self._schemas[schema.name] = schema
            self._schemas[object_name_or_id] = schema
            return schema

    async def add_field_option(self, object_id: str, field_id: str, name: str) -> Tag:
        """``POST /api/custom-objects/{object UUID}/fields/{field id}/options`` with
        ``{"name": ...}``: add an option (a dynamic tag, for a ``dynamictags`` field) and
        return it. The route and body are the ones Kizen's own CLI uses to add field options
        (``kizen fields options add``); not idempotent, so the caller lists first.
        """
        data = await self._session.call(
            "POST",
            f"/api/custom-objects/{_seg(object_id)}/fields/{_seg(field_id)}/options",
            json={"name": name},
            idempotent=False,
        )
        return Tag.from_wire(data)

    async def list_dynamic_tags(self, object: str, field_id: str) -> list[Tag]:
        """Every tag of a ``dynamictags`` field, from the routes Kizen's CLI reads.

        Custom objects: ``GET /api/pipelines/{object UUID}/fields/{field}/tags`` (the CLI
        always addresses the object by UUID here, so an API name is resolved through the
        schema first); contacts: ``GET /api/client/fields/{field}/tags``. Paged, with the
        CLI's query parameters.
        """
        if self._is_contacts(object):
            path = f"/api/client/fields/{_seg(field_id)}/tags"
        else:
            object_id = (await self.get_object_schema(object)).id
            path = f"/api/pipelines/{_seg(object_id)}/fields/{_seg(field_id)}/tags"

        async def fetch(page: int) -> Page[Tag]:
            params = _params(search="", ordering="name", page=page, page_size=100)
            data = await self._session.call("GET", path, params=params)
            if isinstance(data, list):
                return Page(len(data), None, None, [Tag.from_wire(d) for d in data])
            return Page.from_wire(data, Tag.from_wire)

        return [tag async for tag in self._paginate(fetch)]

    # --- helpers ---------------------------------------------------------------------------

    def _named(self, object: str, entries: Sequence[Entry]) -> Sequence[Entry]:
        """The entries as Kizen's messages should name them: API names for id-addressed
        entries when the schema is known (contacts are created by field id, AE), so that a
        400 says ``email``, not a UUID. Used only to name errors; the body is not changed.
        """
        schema = self._schemas.get(object)
        if schema is None or not any("id" in e and "name" not in e for e in entries):
            return entries
        named: list[Entry] = []
        for entry in entries:
            target = schema.field(str(entry["id"])) if "id" in entry else None
            named.append({"name": target.name} if target is not None else entry)
        return named

    def _is_contacts(self, object: str) -> bool:
        schema = self._schemas.get(object)
        return object == _CONTACTS or (schema is not None and schema.is_contacts)

    @staticmethod
    def _record_path(object: str, record_id: str) -> str:
        return f"/api/records/{_seg(object)}/{_seg(record_id)}"

    @staticmethod
    def _write_body(entries: Sequence[Entry], *, archived_conflict: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"fields": list(entries)}
        if archived_conflict is not None:
            body["archived_conflict"] = archived_conflict
        return body
