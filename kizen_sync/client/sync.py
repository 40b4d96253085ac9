"""Blocking facade over :class:`~kizen_sync.client.KizenClient` for the CLI and Dagster.

The async client runs on a private event loop thread (an anyio blocking portal), so one
facade keeps one set of pooled connections, one pacer and one schema cache across calls.
``capture_attempts()`` opened in the calling thread still sees the attempts: each call
carries the caller's capture list across the thread hop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import partial
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from kizen_sync.client.attempts import AttemptInfo, ClientStats, current_sink, use_sink
from kizen_sync.client.client import Entry, KizenClient
from kizen_sync.client.models import FieldValueItem, ObjectSummary, Page, Record, Tag, UpsertResult
from kizen_sync.client.settings import ClientSettings
from kizen_sync.schema import ObjectSchema

__all__ = ["SyncKizenClient"]

P = ParamSpec("P")
T = TypeVar("T")

_MAX_PAGES = 100_000


class SyncKizenClient:
    """Synchronous Kizen client; same methods as :class:`KizenClient`, without ``await``.

    Use as a context manager (or call :meth:`close`)::

        with SyncKizenClient(ClientSettings.from_env()) as kizen:
            schema = kizen.get_object_schema("accounts")
    """

    def __init__(
        self, settings: ClientSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._client: KizenClient | None = None

    def __repr__(self) -> str:
        s = self.settings
        return f"SyncKizenClient(base_url={s.base_url!r}, business_id={s.business_id!r})"

    def __enter__(self) -> SyncKizenClient:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Start the event loop thread and the async client (idempotent)."""
        if self._portal is not None:
            return
        self._portal_cm = start_blocking_portal(backend="asyncio")
        self._portal = self._portal_cm.__enter__()
        self._client = self._portal.call(self._make_client)

    async def _make_client(self) -> KizenClient:
        # Built on the loop thread so its asyncio primitives belong to that loop.
        return KizenClient(self.settings, transport=self._transport)

    def close(self) -> None:
        """Close connections and stop the loop thread."""
        if self._portal is None or self._portal_cm is None:
            return
        try:
            if self._client is not None:
                self._portal.call(self._client.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)
            self._portal = self._portal_cm = self._client = None

    @property
    def client(self) -> KizenClient:
        """The underlying async client (opened on first use)."""
        self.open()
        assert self._client is not None
        return self._client

    @property
    def stats(self) -> ClientStats:
        """Counters of the underlying client."""
        return self.client.stats

    def _call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        self.open()
        assert self._portal is not None
        return self._portal.call(_run_with_sink, current_sink(), partial(fn, *args, **kwargs))

    # --- endpoint methods (see KizenClient for documentation) ------------------------------

    def get_record(self, object: str, record_id: str, **options: Any) -> Record:
        """Blocking :meth:`KizenClient.get_record`."""
        return self._call(self.client.get_record, object, record_id, **options)

    def put_record(
        self, object: str, record_id: str, entries: Sequence[Entry], **options: Any
    ) -> Record:
        """Blocking :meth:`KizenClient.put_record`."""
        return self._call(self.client.put_record, object, record_id, entries, **options)

    def patch_record(
        self, object: str, record_id: str, entries: Sequence[Entry], **options: Any
    ) -> Record:
        """Blocking :meth:`KizenClient.patch_record`."""
        return self._call(self.client.patch_record, object, record_id, entries, **options)

    def archive_record(self, object: str, record_id: str) -> None:
        """Blocking :meth:`KizenClient.archive_record`."""
        self._call(self.client.archive_record, object, record_id)

    def unarchive_record(self, object: str, record_id: str) -> Record:
        """Blocking :meth:`KizenClient.unarchive_record`."""
        return self._call(self.client.unarchive_record, object, record_id)

    def create_record(self, object: str, entries: Sequence[Entry], **options: Any) -> Record:
        """Blocking :meth:`KizenClient.create_record`."""
        return self._call(self.client.create_record, object, entries, **options)

    def lookup_record(self, object: str, identifier: str, **options: Any) -> Record | None:
        """Blocking :meth:`KizenClient.lookup_record`."""
        return self._call(self.client.lookup_record, object, identifier, **options)

    def upsert_record(
        self, object: str, lookup_value: str, entries: Sequence[Entry], **options: Any
    ) -> UpsertResult:
        """Blocking :meth:`KizenClient.upsert_record`."""
        return self._call(self.client.upsert_record, object, lookup_value, entries, **options)

    def search_records(self, object: str, **options: Any) -> Page[Record]:
        """Blocking :meth:`KizenClient.search_records`."""
        return self._call(self.client.search_records, object, **options)

    def iter_records(
        self,
        object: str,
        *,
        page_size: int = 100,
        field_names: Sequence[str] | None = None,
        search: str | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Iterator[Record]:
        """Every record of a search; one blocking call per page."""
        for page_no in range(1, _MAX_PAGES + 1):
            page = self.search_records(
                object,
                page=page_no,
                page_size=page_size,
                field_names=field_names,
                search=search,
                query=query,
            )
            yield from page.results
            if not page.next or not page.results:
                return

    def iter_field_values(
        self, record_id: str, field_id: str, *, search: str | None = None, page_size: int = 100
    ) -> Iterator[FieldValueItem]:
        """All values of a (summarized) relationship field; one blocking call per page."""
        for page_no in range(1, _MAX_PAGES + 1):
            page = self._call(
                self.client.field_values_page,
                record_id,
                field_id,
                page=page_no,
                page_size=page_size,
                search=search,
            )
            yield from page.results
            if not page.next or not page.results:
                return

    def list_objects(self, *, custom_only: bool = False) -> list[ObjectSummary]:
        """Blocking :meth:`KizenClient.list_objects`."""
        return self._call(self.client.list_objects, custom_only=custom_only)

    def get_object_schema(self, object_name_or_id: str) -> ObjectSchema:
        """Blocking :meth:`KizenClient.get_object_schema` (cached per facade)."""
        return self._call(self.client.get_object_schema, object_name_or_id)

    def list_dynamic_tags(self, object: str, field_id: str) -> list[Tag]:
        """Blocking :meth:`KizenClient.list_dynamic_tags`."""
        return self._call(self.client.list_dynamic_tags, object, field_id)


async def _run_with_sink(sink: list[AttemptInfo] | None, thunk: Callable[[], Awaitable[T]]) -> T:
    with use_sink(sink):
        return await thunk()
