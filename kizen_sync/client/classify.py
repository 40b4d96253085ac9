"""Turn HTTP outcomes into the kizen-sync error tree.

Kept apart from the client so that classification, ``Retry-After`` parsing and the mapping
of Kizen's positional 400 bodies back to request entries can be tested without any I/O.
Messages are built from the status, Kizen's ``detail`` text and the path only: never from
headers or the query string, so no secret can leak through ``str(error)``.
"""

from __future__ import annotations

import email.utils
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from kizen_sync.errors import (
    AuthenticationError,
    ConflictError,
    FieldError,
    KizenAPIError,
    KizenValidationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    TransportError,
)

__all__ = [
    "decode_body",
    "describe_transport",
    "error_from_response",
    "error_from_transport",
    "field_errors",
    "is_unsent",
    "parse_retry_after",
]

_MAX_DETAIL = 300


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date).

    Args:
        value: the header value, or ``None``.
        now: the current time, for tests; defaults to the system clock.

    Returns:
        A non-negative delay, or ``None`` when the header is absent or unparseable.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds == float("inf"):  # NaN / inf
        return None
    return max(0.0, seconds)


def _messages(value: Any) -> list[str]:
    """Flatten DRF message shapes (``"x"``, ``["x"]``, ``[{"message": "x"}]``) to strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        if "message" in value:
            return [str(value["message"])]
        return [f"{k}: {m}" for k, v in value.items() for m in _messages(v)]
    if isinstance(value, Sequence):
        return [m for item in value for m in _messages(item)]
    return [str(value)]


def _entry_name(entry: Mapping[str, Any]) -> str | None:
    ref = entry.get("name", entry.get("id"))
    return None if ref is None else str(ref)


def field_errors(
    body: Any, entries: Sequence[Mapping[str, Any]] | None
) -> tuple[list[FieldError], list[str]]:
    """Split a 400 body into per-entry errors and the rest.

    Kizen's record writes answer ``{"fields": [{}, {"value": [...]}, ...]}``: element *n*
    describes entry *n* of the request, ``{}`` when that entry was fine. Other keys (DRF field
    errors such as ``lookup_value``, ``detail``, ``errors`` of a search page) are returned as
    non-field messages prefixed with their key.

    Args:
        body: the decoded JSON (or text) of the response.
        entries: the ``fields`` list that was sent, to name each failing entry.

    Returns:
        ``(field_errors, non_field_errors)``.
    """
    if not isinstance(body, Mapping):
        return [], _messages(body)
    entries = entries or ()
    per_entry: list[FieldError] = []
    others: list[str] = []
    raw_fields = body.get("fields")
    if isinstance(raw_fields, list):
        for index, item in enumerate(raw_fields):
            if not item:
                continue
            name = _entry_name(entries[index]) if index < len(entries) else None
            if isinstance(item, Mapping):
                msgs = {str(k): _messages(v) for k, v in item.items()}
            else:
                msgs = {"value": _messages(item)}
            per_entry.append(FieldError(index=index, field=name, messages=msgs))
    elif raw_fields is not None:
        others.extend(f"fields: {m}" for m in _messages(raw_fields))
    for key, value in body.items():
        if key in {"fields", "code"}:
            continue
        if key in {"non_field_errors", "detail", "errors"}:
            others.extend(_messages(value))
        else:
            others.extend(f"{key}: {m}" for m in _messages(value))
    return per_entry, others


def _detail(body: Any) -> str:
    if isinstance(body, Mapping):
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail[:_MAX_DETAIL]
        return ""
    if isinstance(body, str) and body and not body.lstrip().startswith("<"):
        return body[:_MAX_DETAIL]
    return ""


def decode_body(response: httpx.Response) -> Any:
    """The JSON body, else the text (empty string for no body)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def error_from_response(
    response: httpx.Response,
    *,
    method: str,
    path: str,
    entries: Sequence[Mapping[str, Any]] | None = None,
) -> KizenAPIError:
    """The error for a non-2xx response.

    Args:
        response: the response received.
        method: request method, for the error's context.
        path: request path without query string.
        entries: the request's ``fields`` list, to tie 400 messages to entries.
    """
    status = response.status_code
    body = decode_body(response)
    ctx: dict[str, Any] = {
        "status": status,
        "method": method,
        "path": path,
        "request_id": response.headers.get("x-request-id"),
        "body": body,
    }
    detail = _detail(body)
    if status == 400:
        fes, nfes = field_errors(body, entries)
        summary = "; ".join([*(f"{fe.field or f'#{fe.index}'}: {fe.text()}" for fe in fes), *nfes])
        return KizenValidationError(
            f"rejected: {summary[:_MAX_DETAIL] or 'validation failed'}",
            field_errors=fes,
            non_field_errors=nfes,
            **ctx,
        )
    if status == 401:
        return AuthenticationError(detail or "API key, user id or business id rejected", **ctx)
    if status == 403:
        return PermissionDeniedError(detail or "permission denied", **ctx)
    if status == 404:
        return NotFoundError(detail or "not found", **ctx)
    if status == 409:
        return ConflictError(detail or "conflict", **ctx)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 429:
        return RateLimitedError(detail or "rate limited", retry_after=retry_after, **ctx)
    if status >= 500:
        return ServerError(detail or "server error", retry_after=retry_after, **ctx)
    # Other 4xx (405, 413, 422, ...): the request itself is wrong; treat as a rejection.
    return KizenValidationError(detail or f"unexpected status {status}", **ctx)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every cause or context behind it (httpx wraps httpcore wraps OS)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _endpoint(exc: httpx.TransportError) -> tuple[str, int | None]:
    try:
        url = exc.request.url
    except RuntimeError:  # raised before a request was attached
        return "the Kizen host", None
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return url.host or "the Kizen host", port


def describe_transport(exc: httpx.TransportError) -> str:
    """What went wrong on the way to Kizen, in words that name the host and the fix.

    A failed TLS handshake names the certificate problem and the host, a refused connection
    the host and port, a name that does not resolve the host; other failures their kind.
    Never includes headers (the API key) nor the query string.
    """
    host, port = _endpoint(exc)
    where = f"{host}:{port}" if port else host
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            problem = cause.verify_message or cause.reason or "verification failed"
            return (
                f"TLS handshake with {host} failed: certificate verify failed ({problem}); "
                "check kizen.base_url, or the CA bundle (SSL_CERT_FILE) when a proxy "
                "re-signs TLS"
            )
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or str(cause)
            return f"TLS handshake with {where} failed ({reason}); is it an https endpoint?"
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"connection to {where} refused: nothing accepts connections there "
                "(check kizen.base_url and that the server is up)"
            )
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host {host} ({cause.strerror or cause}); check kizen.base_url"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connecting to {where} timed out"
    if isinstance(exc, httpx.TimeoutException):
        return f"{where} did not answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).strip()
        if "refused" in text.lower():
            return f"connection to {where} refused: nothing accepts connections there"
        return f"cannot connect to {where}: {text or type(exc).__name__}"
    return f"{type(exc).__name__} talking to {where}: no usable response"


def error_from_transport(exc: httpx.TransportError, *, method: str, path: str) -> TransportError:
    """A :class:`TransportError` for a timeout, refused or dropped connection.

    ``host``/``port`` are set on the error and the message says what happened
    (:func:`describe_transport`); ``unsent`` tells whether the request never left.
    """
    host, port = _endpoint(exc)
    tls = any(isinstance(c, ssl.SSLError) for c in _chain(exc))
    return TransportError(
        describe_transport(exc),
        method=method,
        path=path,
        unsent=is_unsent(exc),
        host=host,
        port=port,
        tls=tls,
    )


def is_unsent(exc: httpx.TransportError) -> bool:
    """True when the request certainly never reached the server (safe to retry any POST)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
