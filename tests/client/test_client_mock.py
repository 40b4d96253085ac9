"""KizenClient against scripted MockTransport answers: wire shapes, retries, errors."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from client_fakes import API_KEY, BUSINESS_ID, RECORD_ID, USER_ID, make_settings, record_json

from kizen_sync.client import KizenClient, capture_attempts
from kizen_sync.errors import (
    AuthenticationError,
    KizenValidationError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)

pytestmark = pytest.mark.anyio

PATCH_PATH = f"/api/records/accounts/{RECORD_ID}"
ENTRIES = [{"name": "tier", "value": {"id": "gold"}}, {"name": "labels", "add_values": ["t1"]}]


async def test_patch_sends_auth_headers_and_fields_body(fake, settings):
    fake.on("PATCH", PATCH_PATH, httpx.Response(200, json=record_json(tier="Gold")))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        record = await kizen.patch_record("accounts", RECORD_ID, ENTRIES, return_all_fields=True)
    request = fake.requests[0]
    assert request.headers["X-API-KEY"] == API_KEY
    assert request.headers["X-USER-ID"] == USER_ID
    assert request.headers["X-BUSINESS-ID"] == BUSINESS_ID
    assert request.url.params["return_all_fields"] == "true"
    assert fake.bodies() == [{"fields": ENTRIES}]
    assert record.id == RECORD_ID
    assert record.value("tier") == "Gold"
    assert record.value("f-tier") == "Gold"
    assert record.field("missing") is None


async def test_server_errors_are_retried_until_success_and_captured(fake, settings):
    fake.on(
        "PATCH",
        PATCH_PATH,
        httpx.Response(503),
        httpx.Response(502),
        httpx.Response(200, json=record_json()),
    )
    async with KizenClient(settings, transport=fake.transport) as kizen:
        with capture_attempts() as attempts:
            await kizen.patch_record("accounts", RECORD_ID, ENTRIES)
        stats = kizen.stats
    assert [a.status for a in attempts] == [503, 502, 200]
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert isinstance(attempts[0].error, ServerError)
    assert attempts[2].error is None
    assert all(a.started_at <= a.finished_at for a in attempts)
    assert (stats.requests, stats.retries, stats.calls) == (3, 2, 1)
    assert stats.by_status[503] == 1


async def test_rate_limits_do_not_use_up_attempts(fake):
    settings = make_settings(max_attempts=2)
    fake.on(
        "PATCH",
        PATCH_PATH,
        *[httpx.Response(429, headers={"Retry-After": "0"})] * 5,
        httpx.Response(500),
        httpx.Response(200, json=record_json()),
    )
    async with KizenClient(settings, transport=fake.transport) as kizen:
        await kizen.patch_record("accounts", RECORD_ID, ENTRIES)
        assert kizen.stats.rate_limited == 5
        assert kizen.stats.requests == 7


async def test_max_attempts_bounds_real_failures(fake):
    settings = make_settings(max_attempts=3)
    fake.on("PATCH", PATCH_PATH, httpx.Response(500, json={"detail": "boom"}))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        with pytest.raises(ServerError, match="boom") as info:
            await kizen.patch_record("accounts", RECORD_ID, ENTRIES)
    assert len(fake.requests) == 3
    assert info.value.path == PATCH_PATH


async def test_retry_budget_stops_a_call_that_would_wait_too_long(fake):
    # Kizen asks for 60 s but the call may only spend 1 s: fail now rather than sleep.
    settings = make_settings(retry_budget_s=1.0, max_retry_after_s=120)
    fake.on("PATCH", PATCH_PATH, httpx.Response(429, headers={"Retry-After": "60"}))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        with pytest.raises(RateLimitedError) as info:
            await kizen.patch_record("accounts", RECORD_ID, ENTRIES)
    assert info.value.retry_after == 60
    assert len(fake.requests) == 1


async def test_retry_after_is_honoured(fake):
    settings = make_settings(max_retry_after_s=120, backoff_base_s=0.001)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    fake.on(
        "GET",
        PATCH_PATH,
        httpx.Response(429, headers={"Retry-After": "7"}),
        httpx.Response(503, headers={"Retry-After": "3"}),
        httpx.Response(200, json=record_json()),
    )
    async with KizenClient(settings, transport=fake.transport) as kizen:
        kizen._session._sleep = fake_sleep  # observe the waits instead of sleeping 10 s
        await kizen.get_record("accounts", RECORD_ID)
        assert kizen.stats.backoff_wait_s == pytest.approx(sum(slept))
    assert len(slept) == 2
    assert 7 <= slept[0] < 7.01
    assert 3 <= slept[1] < 3.01


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
async def test_client_errors_are_never_retried(fake, settings, status):
    fake.on("PATCH", PATCH_PATH, httpx.Response(status, json={"detail": "no"}))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        with pytest.raises(Exception) as info:
            await kizen.patch_record("accounts", RECORD_ID, ENTRIES)
    assert len(fake.requests) == 1
    assert info.value.status == status
    assert not info.value.retryable


async def test_validation_error_names_the_failing_entry(fake, settings):
    body = {"fields": [{}, {"add_values": ["Unknown tag."]}]}
    fake.on("PATCH", PATCH_PATH, httpx.Response(400, json=body))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        with pytest.raises(KizenValidationError) as info:
            await kizen.patch_record("accounts", RECORD_ID, ENTRIES)
    assert info.value.messages_by_field() == {"labels": ["Unknown tag."]}


async def test_dropped_connections_are_retried(settings):
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.RemoteProtocolError("Server disconnected", request=request)
        return httpx.Response(200, json=record_json())

    async with KizenClient(settings, transport=httpx.MockTransport(handler)) as kizen:
        with capture_attempts() as attempts:
            await kizen.patch_record("accounts", RECORD_ID, ENTRIES)
        assert kizen.stats.by_status[None] == 2
    assert [a.status for a in attempts] == [None, None, 200]
    assert isinstance(attempts[0].error, TransportError)


async def test_create_is_not_repeated_after_the_server_may_have_applied_it(settings):
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        sent += 1
        raise httpx.ReadTimeout("timed out", request=request)

    async with KizenClient(settings, transport=httpx.MockTransport(handler)) as kizen:
        with pytest.raises(TransportError):
            await kizen.create_record("accounts", [{"name": "name", "value": "Acme"}])
    assert sent == 1


async def test_create_is_retried_when_the_connection_was_never_made(settings):
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        sent += 1
        if sent == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json={**record_json(name="Acme"), "action": "created"})

    async with KizenClient(settings, transport=httpx.MockTransport(handler)) as kizen:
        record = await kizen.create_record("accounts", [{"name": "name", "value": "Acme"}])
    assert record.value("name") == "Acme"
    assert sent == 2


async def test_lookup_returns_none_only_for_a_real_404(fake, settings):
    path = "/api/records/client_client/lookup"
    fake.on("GET", path, httpx.Response(404, json={"detail": "Not found."}))
    async with KizenClient(make_settings(max_attempts=1), transport=fake.transport) as kizen:
        assert await kizen.lookup_record("client_client", "a@example.com") is None
        assert fake.requests[0].url.params["identifier"] == "a@example.com"
        fake.on("GET", path, httpx.Response(500))
        with pytest.raises(ServerError):
            await kizen.lookup_record("client_client", "a@example.com")


async def test_upsert_reports_the_action(fake, settings):
    created = {**record_json(name="Acme"), "action": "created"}
    fake.on("POST", "/api/records/accounts/upsert", httpx.Response(201, json=created))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        result = await kizen.upsert_record(
            "accounts",
            "Acme",
            [{"name": "tier", "value": {"id": "gold"}}],
            oncreate_unarchive="unarchive",
        )
    assert result.action == "created"
    assert result.record.value("name") == "Acme"
    assert fake.bodies()[0] == {
        "lookup_value": "Acme",
        "fields": [{"name": "tier", "value": {"id": "gold"}}],
        "oncreate_unarchive": "unarchive",
    }


async def test_archive_and_unarchive(fake, settings):
    fake.on("DELETE", PATCH_PATH, httpx.Response(204))
    fake.on("PATCH", f"{PATCH_PATH}/unarchive", httpx.Response(200, json=record_json()))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        assert await kizen.archive_record("accounts", RECORD_ID) is None
        assert (await kizen.unarchive_record("accounts", RECORD_ID)).id == RECORD_ID
        fake.on("DELETE", PATCH_PATH, httpx.Response(404, json={"detail": "Not found."}))
        with pytest.raises(NotFoundError):
            await kizen.archive_record("accounts", RECORD_ID)


def _paged(make_row, total: int):
    """A handler serving ``total`` rows in pages, with an absolute ``next`` URL."""

    def respond(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", 1))
        size = int(request.url.params.get("page_size", 100))
        rows = [make_row(i) for i in range((page - 1) * size, min(page * size, total))]
        more = page * size < total
        return httpx.Response(
            200,
            json={
                "count": total,
                "next": f"https://elsewhere.example/{page + 1}" if more else None,
                "previous": None,
                "results": rows,
                "errors": [],
            },
        )

    return respond


async def test_iter_records_reads_every_page(fake, settings):
    fake.on(
        "POST",
        "/api/records/accounts/search",
        _paged(lambda i: record_json(f"r{i}", name=f"n{i}"), 25),
    )
    async with KizenClient(settings, transport=fake.transport) as kizen:
        ids = [
            r.id async for r in kizen.iter_records("accounts", page_size=10, field_names=["name"])
        ]
    assert ids == [f"r{i}" for i in range(25)]
    assert [r.url.params["page"] for r in fake.requests] == ["1", "2", "3"]
    assert fake.bodies()[0] == {"field_names": ["name"]}


async def test_search_page_with_errors_raises(fake, settings):
    body = {"count": 0, "next": None, "previous": None, "results": [], "errors": ["bad filter"]}
    fake.on("POST", "/api/records/accounts/search", httpx.Response(200, json=body))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        with pytest.raises(KizenValidationError, match="bad filter"):
            await kizen.search_records("accounts", query={"and": True, "query": []})


async def test_iter_field_values_follows_pages(fake, settings):
    path = f"/api/records/{RECORD_ID}/field-values/f-rel"
    row = {
        "id": "c1",
        "first_name": "Al",
        "last_name": "Ex",
        "email": "al@example.com",
        "display_name": "Al Ex",
    }
    fake.on("GET", path, _paged(lambda i: {**row, "id": f"c{i}"}, 5))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        items = [v async for v in kizen.iter_field_values(RECORD_ID, "f-rel", page_size=2)]
    assert [i.id for i in items] == ["c0", "c1", "c2", "c3", "c4"]
    assert items[0].email == "al@example.com"
    assert items[0].name is None


async def test_object_schema_is_fetched_once_per_client(fake, settings):
    obj = {
        "id": "obj-uuid",
        "name": "accounts",
        "object_name": "Accounts",
        "entity_name": "Account",
    }
    fields = [
        {"id": "f1", "name": "name", "field_type": "text", "is_required": True},
        {
            "id": "f2",
            "name": "tier",
            "field_type": "dropdown",
            "options": [{"id": "o1", "name": "Gold"}],
        },
    ]
    fake.on("GET", "/api/custom-objects/accounts", httpx.Response(200, json=obj))
    fake.on("GET", "/api/custom-objects/obj-uuid/fields", httpx.Response(200, json=fields))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        first, second, by_id = await asyncio.gather(
            kizen.get_object_schema("accounts"),
            kizen.get_object_schema("accounts"),
            kizen.get_object_schema("obj-uuid"),
        )
    assert first is second is by_id
    assert first.field("tier").option_by_label("gold").id == "o1"
    # The detail had no fields: the field list was fetched, once.
    assert [r.url.path for r in fake.requests] == [
        "/api/custom-objects/accounts",
        "/api/custom-objects/obj-uuid/fields",
    ]


async def test_fields_embedded_in_the_object_detail_are_never_trusted(fake, settings):
    """Whether the detail embeds a complete field list is unknown (a permission-filtered one
    would be partial): the schema always comes from the field list, as Kizen's CLI reads it.
    """
    fields = [
        {"id": "f1", "name": "name", "field_type": "text"},
        {
            "id": "f2",
            "name": "tier",
            "field_type": "dropdown",
            "options": [{"id": "o1", "name": "Gold"}],
        },
    ]
    obj = {"id": "obj-uuid", "name": "accounts", "fields": fields[:1]}
    fake.on("GET", "/api/custom-objects/accounts", httpx.Response(200, json=obj))
    fake.on("GET", "/api/custom-objects/obj-uuid/fields", httpx.Response(200, json=fields))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        schema = await kizen.get_object_schema("accounts")
    assert [f.name for f in schema.fields] == ["name", "tier"]
    assert [r.url.path for r in fake.requests] == [
        "/api/custom-objects/accounts",
        "/api/custom-objects/obj-uuid/fields",
    ]


async def test_dynamic_tags_use_the_contacts_route_for_contacts(fake, settings):
    tags = {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [{"id": "t1", "name": "VIP"}, {"id": "t2", "name": "Beta"}],
    }
    fake.on("GET", "/api/client/fields/f-tags/tags", httpx.Response(200, json=tags))
    # Custom objects: /api/pipelines/{object UUID}/... as Kizen's CLI reads them
    fake.on(
        "GET",
        "/api/custom-objects/accounts",
        httpx.Response(200, json={"id": "obj-uuid", "name": "accounts"}),
    )
    fake.on("GET", "/api/custom-objects/obj-uuid/fields", httpx.Response(200, json=[]))
    fake.on("GET", "/api/pipelines/obj-uuid/fields/f-labels/tags", httpx.Response(200, json=tags))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        contact_tags = await kizen.list_dynamic_tags("client_client", "f-tags")
        account_tags = await kizen.list_dynamic_tags("accounts", "f-labels")
    assert [t.name for t in contact_tags] == ["VIP", "Beta"] == [t.name for t in account_tags]
    tag_requests = [r for r in fake.requests if r.url.path.endswith("/tags")]
    assert [r.url.path for r in tag_requests] == [
        "/api/client/fields/f-tags/tags",
        "/api/pipelines/obj-uuid/fields/f-labels/tags",
    ]
    assert dict(tag_requests[1].url.params) == {
        "search": "",
        "ordering": "name",
        "page": "1",
        "page_size": "100",
    }


async def test_list_objects_passes_custom_only(fake, settings):
    body = {
        "count": 1,
        "next": None,
        "previous": None,
        "results": [{"id": "o", "name": "client_client", "is_custom": False}],
    }
    fake.on("GET", "/api/custom-objects", httpx.Response(200, json=body))
    async with KizenClient(settings, transport=fake.transport) as kizen:
        objects = await kizen.list_objects()
    assert [o.name for o in objects] == ["client_client"]
    assert fake.requests[0].url.params["custom_only"] == "false"


async def test_each_task_captures_only_its_own_attempts(fake, settings):
    fake.on(
        "GET",
        "/api/records/accounts/a",
        httpx.Response(503),
        httpx.Response(200, json=record_json("a")),
    )
    fake.on("GET", "/api/records/accounts/b", httpx.Response(200, json=record_json("b")))

    async def read(record_id: str) -> int:
        with capture_attempts() as attempts:
            await kizen.get_record("accounts", record_id)
        return len(attempts)

    async with KizenClient(settings, transport=fake.transport) as kizen:
        assert await asyncio.gather(read("a"), read("b")) == [2, 1]


async def test_secrets_never_leak(fake, caplog):
    canary = "canary-key-5d1f9a"
    settings = make_settings(api_key=canary, max_attempts=2)
    fake.on(
        "PATCH", PATCH_PATH, httpx.Response(503), httpx.Response(401, json={"detail": "bad key"})
    )
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "kizen_sync"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    async with KizenClient(settings, transport=fake.transport) as kizen:
        with pytest.raises(AuthenticationError) as info:
            await kizen.patch_record("accounts", RECORD_ID, ENTRIES)
        assert canary not in repr(kizen)
    assert fake.requests[0].headers["X-API-KEY"] == canary  # it was really sent
    texts = [repr(settings), str(settings), str(info.value), repr(info.value), caplog.text]
    texts += [str(r.args) for r in caplog.records]
    assert not [t for t in texts if canary in t]
    assert any("retrying PATCH" in r.getMessage() for r in caplog.records)
    assert info.value.__cause__ is None


def test_settings_from_env(monkeypatch):
    from kizen_sync.client import ClientSettings

    monkeypatch.setenv("KIZEN_API_KEY", "env-key")
    monkeypatch.setenv("KIZEN_USER_ID", USER_ID)
    monkeypatch.setenv("KIZEN_BUSINESS_ID", BUSINESS_ID)
    monkeypatch.setenv("KIZEN_BASE_URL", "http://127.0.0.1:9/api/")
    settings = ClientSettings.from_env(requests_per_second=200)
    assert settings.api_key.get_secret_value() == "env-key"
    assert settings.base_url == "http://127.0.0.1:9"
    assert settings.paced_rate == pytest.approx(190)
    # Burst + paced rate stay within the limit in any one second: 5 + 190 <= 200.
    assert settings.effective_burst == 5
    assert "env-key" not in repr(settings)


def test_disabling_tls_verification_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="kizen_sync.client"):
        KizenClient(make_settings(verify_tls=False))
    assert "TLS certificate verification is OFF" in caplog.text
