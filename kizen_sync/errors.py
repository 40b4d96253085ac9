"""One error tree for kizen-sync.

Every error the library raises derives from :class:`KizenSyncError` and belongs to exactly
one of three families, which tell the caller what to do next::

    KizenSyncError                      root; ``context`` holds structured attributes
    ├── FatalError                      stop the run (nothing more can succeed)
    │   ├── ConfigError                 sync file invalid; ``problems`` lists every (key, message)
    │   ├── SourceError                 warehouse query failed, unknown table/column, bad keys
    │   ├── StateStoreError             state/audit tables unusable
    │   ├── GuardError                  a guard stopped the run (before its first write, or
    │   │                               mid-apply when what it sends exceeds the budget)
    │   ├── LeaseError                  the sync's run lease (one run per sync at a time)
    │   │   ├── LeaseHeldError          another run holds the sync (names it and since when)
    │   │   └── LeaseLostError          this run lost its lease and stopped sending
    │   └── AuthenticationError         401/403 from Kizen (``PermissionDeniedError`` for 403)
    ├── RetryableError                  transient: retried in-run, then left for the next run
    │   ├── RateLimitedError            429; ``retry_after`` seconds when Kizen said so
    │   ├── ServerError                 5xx
    │   └── TransportError              timeout, refused or dropped connection
    └── SkippableError                  this record fails, the others go on
        ├── MappingError                a value could not be coerced before any request
        ├── KizenValidationError        400 with Kizen's per-field messages
        ├── NotFoundError               404 (record deleted/archived in Kizen, or invisible)
        ├── ConflictError               409 (concurrent write/archive, identifier conflict)
        ├── IdentityCollisionError      two source rows would write one Kizen record
        ├── RowStateError               a row or its state cannot be read (bad bytes, corrupt
                                        state row): that record fails, the run goes on
        └── NotAppliedError             Kizen accepted a write but does not hold the values

API errors also derive from :class:`KizenAPIError`, which carries ``status``, ``method``,
``path`` (never the query string nor any header), ``request_id`` and Kizen's ``body``.
No error ever carries the API key: messages are built from safe attributes only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConfigProblem",
    "ConflictError",
    "FatalError",
    "FieldError",
    "GuardError",
    "IdentityCollisionError",
    "KizenAPIError",
    "KizenSyncError",
    "KizenValidationError",
    "LeaseError",
    "LeaseHeldError",
    "LeaseLostError",
    "MappingError",
    "NotAppliedError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RetryableError",
    "RowStateError",
    "ServerError",
    "SkippableError",
    "SourceError",
    "StateStoreError",
    "TransportError",
]


class KizenSyncError(Exception):
    """Root of every kizen-sync error.

    Args:
        message: human-readable text; must never contain secrets.
        **context: structured attributes (sync name, source key, field, ...), also exposed as
            attributes of the exception so callers and audit writers need not parse messages.
    """

    retryable: ClassVar[bool] = False
    fatal: ClassVar[bool] = False

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = dict(context)
        for key, value in context.items():
            if not hasattr(type(self), key):
                setattr(self, key, value)

    @property
    def error_class(self) -> str:
        """Short class name stored in the audit table."""
        return type(self).__name__

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (Dagster's step processes, multiprocessing). The
        # default reduce calls ``cls(*args)``, which the keyword-only constructors below
        # refuse; rebuild without ``__init__`` and restore every attribute (status,
        # field_errors, problems, ...) from ``__dict__``.
        return (_rebuild_error, (type(self), self.args), dict(self.__dict__))


def _rebuild_error(cls: type[KizenSyncError], args: tuple[Any, ...]) -> KizenSyncError:
    error = cls.__new__(cls)
    error.args = args
    return error


class FatalError(KizenSyncError):
    """The run cannot go on; records already confirmed stay confirmed."""

    fatal = True


class RetryableError(KizenSyncError):
    """A transient failure: retry with backoff, then leave it for the next run."""

    retryable = True


class SkippableError(KizenSyncError):
    """One record failed; the run goes on with the others."""


# --- configuration and warehouse -------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a sync file: the dotted key that is wrong and why."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(FatalError):
    """The sync file is invalid. All problems are collected and reported at once."""

    def __init__(self, problems: Sequence[ConfigProblem], *, source: str | None = None) -> None:
        self.problems = list(problems)
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s){where}:\n{lines}", source=source)


class SourceError(FatalError):
    """Reading the warehouse failed, or the source breaks an invariant (keys, columns)."""


class StateStoreError(FatalError):
    """The state or audit tables cannot be created, upgraded or written."""


class GuardError(FatalError):
    """A guard (mass archive, reject rate) stopped the run.

    Before any request, or during the apply when what was actually sent reached the guard's
    budget.
    """


class LeaseError(FatalError):
    """The run lease of a sync (one run per sync at a time, held in the warehouse)."""


class LeaseHeldError(LeaseError):
    """Another run holds the sync; this run sent nothing.

    Attributes (``context``): ``sync``, ``holder_run_id``, ``holder`` (host and pid),
    ``since`` (when that run took the lease), ``waited_s``.
    """


class LeaseLostError(LeaseError):
    """The run lost its lease and stopped sending.

    No renewal in time, or its lock connection closed: a run that took the sync over must
    never be overwritten.
    """


# --- Kizen API ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """Kizen's messages for one entry of a request's ``fields`` list.

    ``index`` is the entry's position in the request; ``field`` is the API name or field id
    that entry addressed, tied back by the client from the request it sent.
    """

    index: int
    field: str | None
    messages: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def text(self) -> str:
        """All messages for this entry as one line."""
        parts = [f"{k}: {'; '.join(v)}" for k, v in self.messages.items()]
        return ", ".join(parts)


class KizenAPIError(KizenSyncError):
    """An error answered by (or on the way to) the Kizen API.

    Attributes:
        status: HTTP status, or ``None`` when no response arrived.
        method: HTTP method.
        path: URL path only (no query string, no headers).
        request_id: Kizen's ``X-Request-ID`` when present.
        body: parsed JSON body (or text) of the error response.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        **context: Any,
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.request_id = request_id
        self.body = body
        where = f" ({method} {path})" if method and path else ""
        code = f"{status} " if status else ""
        super().__init__(f"{code}{message}{where}", **context)


class AuthenticationError(KizenAPIError, FatalError):
    """401: the API key, user id or business id was rejected."""


class PermissionDeniedError(AuthenticationError):
    """403: the key's user may not do this on this object."""


class RateLimitedError(KizenAPIError, RetryableError):
    """429: too many requests; ``retry_after`` is the delay Kizen asked for, in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ServerError(KizenAPIError, RetryableError):
    """5xx from Kizen (``retry_after`` set when a 503 carried ``Retry-After``)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class TransportError(KizenAPIError, RetryableError):
    """No usable response: timeout, refused connection, connection dropped mid-response."""


class KizenValidationError(KizenAPIError, SkippableError):
    """400: Kizen rejected the record; ``field_errors`` ties its messages to request entries."""

    def __init__(
        self,
        message: str,
        *,
        field_errors: Sequence[FieldError] = (),
        non_field_errors: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        self.field_errors = list(field_errors)
        self.non_field_errors = list(non_field_errors)
        super().__init__(message, **kwargs)

    def messages_by_field(self) -> dict[str, list[str]]:
        """``{field: [message, ...]}`` for the audit table (non-field errors under ``*``)."""
        out: dict[str, list[str]] = {}
        for fe in self.field_errors:
            out.setdefault(fe.field or f"#{fe.index}", []).extend(
                m for msgs in fe.messages.values() for m in msgs
            )
        if self.non_field_errors:
            out.setdefault("*", []).extend(self.non_field_errors)
        return out


class NotFoundError(KizenAPIError, SkippableError):
    """404: the record (or object) does not exist, is archived, or is not visible."""


class ConflictError(KizenAPIError, SkippableError):
    """409: a concurrent write/archive, or an identifier held by another record."""


class IdentityCollisionError(SkippableError):
    """Two source rows would write the same Kizen record; nothing is sent for either.

    Attributes (``context``): ``source_key``, ``others`` (the other rows' keys),
    ``identifier`` (the match key or Kizen id they share), ``kizen_id`` when known.
    """


class RowStateError(SkippableError):
    """A row, or the state kept for it, cannot be read: bytes that are not valid UTF-8, a
    corrupt ``sync_state`` row. The record fails; the rest of the sync goes on.

    Attributes (``context``): ``source_key``, ``column`` (source column or state column).
    """


class NotAppliedError(SkippableError):
    """Kizen accepted a write (2xx) but reading the record back shows other values.

    Raised by read-after-write verification: an unverified wire shape that Kizen ignores
    becomes a visible record failure instead of silent corruption, and since no state is
    saved the record is sent again by the next run.

    Attributes:
        record_id: the Kizen record.
        mismatches: ``(field, held, sent)`` for every field that differs, values as text.
    """

    def __init__(
        self, *, record_id: str, mismatches: Sequence[tuple[str, str, str]], **context: Any
    ) -> None:
        self.record_id = record_id
        self.mismatches = list(mismatches)
        parts = "; ".join(
            f"field {name} holds {held} (sent {sent})" for name, held, sent in self.mismatches
        )
        super().__init__(f"accepted but not applied: {parts}", **context)

    def messages_by_field(self) -> dict[str, list[str]]:
        """``{field: [message]}`` for the audit table."""
        return {
            name: [f"accepted but not applied: holds {held} (sent {sent})"]
            for name, held, sent in self.mismatches
        }


# --- mapping ----------------------------------------------------------------------------------


class MappingError(SkippableError):
    """A source value could not be coerced to its Kizen field; no request was sent.

    The planner collects every problem of a row into one error: the first problem gives
    ``column``/``field``/``problem`` and the message lists them all, while ``problems`` keeps
    each one apart so that the audit can show one message per field
    (:meth:`messages_by_field`, the counterpart of Kizen's own per-field 400 messages).

    Attributes:
        column: the source column.
        field: the Kizen field (API name).
        problem: what is wrong, in words a data engineer can act on.
        problems: every single problem of the row when several were collected, else empty.
    """

    def __init__(
        self,
        *,
        column: str,
        field: str,
        problem: str,
        problems: Sequence[MappingError] = (),
        **context: Any,
    ) -> None:
        self.column = column
        self.field = field
        self.problem = problem
        self.problems: tuple[MappingError, ...] = tuple(problems)
        super().__init__(
            f"column {column!r} -> field {field!r}: {problem}",
            **context,
        )

    def each(self) -> tuple[MappingError, ...]:
        """The single problems this error stands for (itself when it is a single one)."""
        return self.problems or (self,)

    def messages_by_field(self) -> dict[str, list[str]]:
        """``{field: [problem, ...]}`` over every collected problem, for the audit table."""
        out: dict[str, list[str]] = {}
        for single in self.each():
            out.setdefault(single.field, []).append(single.problem)
        return out


def describe(error: BaseException, context: Mapping[str, Any] | None = None) -> str:
    """One-line description of any error, safe for logs and the audit table."""
    text = str(error) or type(error).__name__
    if context:
        extra = ", ".join(f"{k}={v}" for k, v in context.items())
        text = f"{text} [{extra}]"
    return text
