"""The Starlette application: Kizen's routes, auth, knobs, request log and admin endpoints.

Each ``/api`` route is wrapped once by :meth:`Api.route`, which adds, in order: the rate
limit decision (at arrival), the latency sleep, injected 5xx, injected connection drops,
authentication and write permission, then the handler under the store lock, an injected slow
response (``slow_rate``/``slow_ms``, after processing), the ``X-Request-ID`` header and a
request-log entry. Handlers are synchronous and never await, so the lock is held only for
in-memory work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import httpx
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from kizen_sync.emulator.evidence import check_request
from kizen_sync.emulator.knobs import DROPPED_STATUS, Faults, Knobs, RateLimiter, RequestLog
from kizen_sync.emulator.service import RecordService
from kizen_sync.emulator.writes import ApiError

#: Status logged when the client hung up before its request was read (nginx's 499).
CLIENT_CLOSED = 499
#: An API key the emulator knows but whose user may do nothing: every request answers 403.
NO_ACCESS_KEY = "demo-no-access-key"

__all__ = [
    "NO_ACCESS_KEY",
    "Api",
    "AppHost",
    "DroppedConnection",
    "build_app",
    "json_response",
    "quiet_dropped_connections",
]

_NOT_FOUND_HTML = (
    '<!doctype html><html lang="en"><head><title>Not Found</title></head><body>'
    "<h1>Not Found</h1><p>The requested resource was not found on this server.</p>"
    "</body></html>"
)
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class _KizenUUID(Convertor[str]):
    """Path UUIDs exactly as the OpenAPI pattern (dashes required); anything else 404s."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def convert(self, value: str) -> str:
        return value.lower()

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("kuuid", _KizenUUID())


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised by the app to drop a connection on purpose (the ``drop_rate`` knob).

    Over real HTTP uvicorn closes the socket after the response start was sent; in-process
    ``httpx.ASGITransport`` re-raises it, and being an ``httpx.TransportError`` it reaches the
    client exactly like a dropped connection would.
    """


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


def quiet_dropped_connections() -> None:
    """Keep uvicorn from logging intended drops as application errors."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropFilter) for f in logger.filters):
        logger.addFilter(_DropFilter())


class _DroppedResponse(Response):
    """Sends the response start, then aborts: the client sees a cut connection."""

    def __init__(self, status: int, request_id: str) -> None:
        super().__init__(
            status_code=status, headers={"X-Request-ID": request_id, "content-length": "64"}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        raise DroppedConnection("connection dropped by the emulator (drop_rate knob)")


class AppHost(Protocol):
    """What the app needs from the :class:`~kizen_sync.emulator.Emulator` that owns it."""

    service: RecordService
    request_log: RequestLog
    faults: Faults
    limiter: RateLimiter

    @property
    def knobs(self) -> Knobs:
        """Current knobs."""
        ...

    @property
    def credentials(self) -> tuple[str, str, str]:
        """(api_key, user_id, business_id) accepted with full access."""
        ...

    @property
    def readonly_key(self) -> str:
        """API key accepted for reads only."""
        ...

    def set_knobs(self, **changes: Any) -> Knobs:
        """Change knobs at runtime."""
        ...


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response (no spaces: less to send on the hot path)."""
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


Handler = Callable[[Request, Any, bool], Response]


class Api:
    """Wraps Kizen route handlers with the cross-cutting behaviour (module docstring)."""

    def __init__(self, host: AppHost) -> None:
        self.host = host

    def _auth(self, request: Request, write: bool) -> bool:
        headers = request.headers
        key = headers.get("x-api-key")
        user = headers.get("x-user-id")
        business = headers.get("x-business-id")
        if not (key and user and business):
            raise ApiError(
                401,
                {
                    "detail": "Authentication credentials were not provided.",
                    "code": "not_authenticated",
                },
            )
        api_key, user_id, business_id = self.host.credentials
        if key == NO_ACCESS_KEY and user == user_id and business == business_id:
            # A valid key whose user lacks the "Standard API Keys" permission: 403, not 401.
            raise ApiError(
                403,
                {
                    "detail": "You do not have permission to perform this action.",
                    "code": "permission_required",
                },
            )
        if (
            key not in (api_key, self.host.readonly_key)
            or user != user_id
            or (business != business_id)
        ):
            raise ApiError(
                401,
                {
                    "detail": "Invalid API key, user id or business id.",
                    "code": "authentication_failed",
                },
            )
        can_write = key == api_key
        if write and not can_write:
            raise ApiError(
                403,
                {
                    "detail": "You do not have permission to perform this action.",
                    "code": "permission_required",
                },
            )
        return can_write

    def _strict(self, request: Request, body: Any) -> None:
        """Strict mode: refuse what the evidence does not confirm or document.

        Entries at fault get positional messages (``code: unverified_shape``); where a source
        saw Kizen answer 403 (contacts created by name-keyed entries) the answer is 403.
        """
        findings = check_request(
            request.method,
            request.url.path,
            request.query_params.keys(),
            body,
            self.host.service.business,
        )
        if not findings:
            return
        if any(f.route == "(unknown route)" for f in findings):
            raise ApiError(404, {"detail": "Not found.", "code": "not_found"})
        if any(f.status == 403 for f in findings):
            detail = "; ".join(str(f) for f in findings if f.status == 403)
            raise ApiError(403, {"detail": detail, "code": "permission_required"})
        count = (
            len(body["fields"])
            if isinstance(body, dict) and isinstance(body.get("fields"), list)
            else 0
        )
        per_entry: dict[int, dict[str, list[str]]] = {}
        general: list[str] = []
        for f in findings:
            if f.entry is None or f.entry >= count:
                general.append(f"strict: {f}")
                continue
            slot = per_entry.setdefault(f.entry, {"value": [], "code": []})
            slot["value"].append(f"strict: {f.what} is {f.tier.label} ({f.why})")
            slot["code"].append("unverified_shape")
        raise ApiError(
            400,
            {
                "non_field_errors": general,
                "fields": [per_entry.get(i, {}) for i in range(count)],
            },
        )

    async def _handle(self, request: Request, handler: Handler, write: bool) -> Response:
        try:
            can_write = self._auth(request, write)
            body: Any = None
            if request.method in ("POST", "PUT", "PATCH"):
                raw = await request.body()
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except ValueError as exc:
                        raise ApiError(
                            400, {"detail": f"JSON parse error - {exc}", "code": "parse_error"}
                        ) from None
            if self.host.knobs.strict:
                self._strict(request, body)
            with self.host.service.store.lock:
                return handler(request, body, can_write)
        except ApiError as err:
            return json_response(err.body, err.status)
        except ClientDisconnect:
            # The client gave up mid-request (its timeout, a killed sync): nothing was applied
            # and nobody is listening. 499 is nginx's "client closed request", for the log.
            return Response(status_code=CLIENT_CLOSED)

    def route(self, path: str, method: str, handler: Handler, *, write: bool = False) -> Route:
        """A Starlette route for ``handler`` with auth, knobs and logging around it."""
        template = re.sub(r":\w+}", "}", path)
        host = self.host

        async def endpoint(request: Request) -> Response:
            knobs = host.knobs
            request_id = uuid.uuid4().hex
            retry_after = host.limiter.allow(knobs.rate_limit_rps)
            if knobs.latency_ms:
                await asyncio.sleep(knobs.latency_ms / 1000)
            drop = None
            log = host.request_log
            if retry_after is not None:
                log.add_fault("throttled")
                response = json_response(
                    {
                        "detail": f"Request was throttled. Expected available in "
                        f"{retry_after} second.",
                        "code": "throttled",
                    },
                    429,
                    {"Retry-After": str(retry_after)},
                )
            elif (status := host.faults.error_status(knobs.error_rate)) is not None:
                log.add_fault("error")
                response = json_response(
                    {"detail": "Injected server error.", "code": "server_error"}, status
                )
            else:
                drop = host.faults.drop(knobs.drop_rate)
                if drop == "before":
                    log.add_fault("drop_before")
                    log.add(method, template, DROPPED_STATUS)
                    return _DroppedResponse(200, request_id)
                response = await self._handle(request, handler, write)
                if drop is None and host.faults.slow(knobs.slow_rate):
                    # Processed already: a client that gives up sees a timeout for a write
                    # that was applied.
                    log.add_fault("slow")
                    await asyncio.sleep(knobs.slow_ms / 1000)
            log.add(method, template, DROPPED_STATUS if drop == "after" else response.status_code)
            if drop == "after":
                log.add_fault("drop_after")
                return _DroppedResponse(response.status_code, request_id)
            response.headers["X-Request-ID"] = request_id
            return response

        return Route(path, endpoint, methods=[method], name=f"{method} {template}")


def _admin(host: AppHost) -> list[Route]:
    def guard(request: Request) -> Response | None:
        client = request.client
        if client is not None and client.host not in _LOOPBACK:
            return json_response(
                {
                    "detail": "The admin API answers loopback clients only.",
                    "code": "permission_required",
                },
                403,
            )
        return None

    async def knobs(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        if request.method == "PATCH":
            try:
                changes = json.loads(await request.body() or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("body must be a JSON object")
                host.set_knobs(**changes)
            except (ValueError, TypeError) as exc:
                return json_response({"detail": str(exc), "code": "invalid"}, 400)
        return json_response(host.knobs.as_dict())

    async def requests(request: Request) -> Response:
        return guard(request) or json_response(host.request_log.as_json())

    async def reset_log(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        host.request_log.reset()
        return json_response(host.request_log.as_json())

    async def records(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        service = host.service
        archived = request.query_params.get("include_archived", "").lower() in ("true", "1")
        with service.store.lock:
            obj = service.business.object(request.path_params["object"])
            if obj is None:
                return json_response({"detail": "Not found.", "code": "not_found"}, 404)
            rows = [
                {
                    **service.render_record(obj, r, obj.fields, can_write=True),
                    "archived": r.archived,
                }
                for r in service.store.objects_records(obj.id).values()
                if archived or not r.archived
            ]
        return json_response(rows)

    async def files(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        try:
            data = json.loads(await request.body() or b"{}")
            name = str(data.get("name") or "upload.bin") if isinstance(data, dict) else ""
        except ValueError as exc:
            return json_response({"detail": str(exc), "code": "invalid"}, 400)
        with host.service.store.lock:
            file_id = host.service.upload_file(name)
        return json_response({"id": file_id, "name": name}, 201)

    return [
        Route("/_emulator/files", files, methods=["POST"]),
        Route("/_emulator/knobs", knobs, methods=["GET", "PATCH"]),
        Route("/_emulator/requests", requests, methods=["GET"]),
        Route("/_emulator/reset-log", reset_log, methods=["POST"]),
        Route("/_emulator/records/{object}", records, methods=["GET"]),
    ]


def build_app(host: AppHost, api_routes: Callable[[Api], list[Route]]) -> Starlette:
    """The ASGI app: Kizen routes from ``api_routes``, admin routes, Kizen-like 404/405."""
    api = Api(host)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = {"X-Request-ID": uuid.uuid4().hex}
        if status == 405:
            host.request_log.add(request.method, "(method not allowed)", 405)
            return json_response(
                {"detail": f'Method "{request.method}" not allowed.', "code": "method_not_allowed"},
                405,
                headers,
            )
        if request.url.path.startswith("/api"):
            host.request_log.add(request.method, "(unmatched)", status)
        return HTMLResponse(_NOT_FOUND_HTML, status_code=status, headers=headers)

    app = Starlette(
        routes=[*api_routes(api), *_admin(host)], exception_handlers={HTTPException: http_error}
    )
    app.router.redirect_slashes = False
    return app
