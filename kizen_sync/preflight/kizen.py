"""Kizen's side of the pre-flight check: reachable, credentials, objects, fields, tags, reads.

Everything here reads; nothing writes. :func:`check_account` probes the connection and the
credentials once; :func:`check_sync` checks one sync's object and mappings. The runner calls
:func:`prepare_sync` before a run's first write: the same checks a run needs anyway (it reads
the schema and the tags to plan), raising a :class:`~kizen_sync.errors.ConfigError` whose
problems carry the same fixes ``kizen-sync check`` prints.

401 and 403 are told apart: 401 means the key, user id or business id is wrong (or do not
belong together); 403 means they are right but the key's user lacks a permission
(app-builder-cli's reading of Kizen's answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kizen_sync.client import KizenClient
from kizen_sync.config import SyncConfig, validate_against_schema
from kizen_sync.errors import (
    AuthenticationError,
    ConfigError,
    ConfigProblem,
    KizenAPIError,
    NotFoundError,
    PermissionDeniedError,
    TransportError,
)
from kizen_sync.preflight.results import Check, Status
from kizen_sync.schema import OPTION_TYPES, ObjectSchema

__all__ = ["KizenSide", "check_account", "check_sync", "prepare_sync"]

_AREA = "kizen"
_PERMISSION_FIX = (
    "give the key's user the 'Standard API Keys' permission and access to this object in "
    "Kizen (Settings > Team > permission groups), or use a key of a user who has them"
)


@dataclass
class KizenSide:
    """What the Kizen checks of one sync found (the schema and tags feed the run's plan)."""

    checks: list[Check] = field(default_factory=list)
    schema: ObjectSchema | None = None
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The first 403 met (the object or a tag listing): a run raises it, with the fix.
    denied: PermissionDeniedError | None = None

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not any(c.status is Status.FAIL for c in self.checks)


def _said(exc: KizenAPIError) -> str:
    """What Kizen said (its ``detail``), without the status and path the message repeats."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return exc.message


def _credentials_fix(client: KizenClient) -> str:
    s = client.settings
    return (
        f"check that the API key belongs to user {s.user_id} and that this user is a member "
        f"of business {s.business_id} (keys are made on the user's My Profile page in Kizen; "
        "the key comes from the variable named by kizen.api_key_env)"
    )


async def check_account(client: KizenClient) -> list[Check]:
    """Reachability, TLS and credentials, from one read of the objects list.

    Returns checks; the credentials check is ``FAIL`` (401) or ``FAIL`` (403) or ``OK``.
    """
    base = client.settings.base_url
    reached = Check(_AREA, "reachable", Status.OK, f"{base} answered")
    try:
        page = await client.list_objects_page()
    except TransportError as exc:
        fix = "check kizen.base_url"
        if getattr(exc, "tls", False):
            fix += (
                "; if a proxy re-signs TLS, point SSL_CERT_FILE at its CA bundle "
                "(never turn verify_tls off against Kizen)"
            )
        else:
            fix += ", that the host is up and reachable from here (proxies, firewall)"
        return [
            Check(_AREA, "reachable", Status.FAIL, exc.message, fix),
            Check(_AREA, "credentials", Status.SKIPPED, "Kizen was not reached"),
        ]
    except PermissionDeniedError as exc:
        return [
            reached,
            Check(
                _AREA,
                "credentials",
                Status.FAIL,
                f"the key is valid, but its user may not list objects (403: {_said(exc)})",
                _PERMISSION_FIX,
            ),
        ]
    except AuthenticationError as exc:
        return [
            reached,
            Check(
                _AREA,
                "credentials",
                Status.FAIL,
                f"Kizen refused the API key, user id or business id (401: {_said(exc)})",
                _credentials_fix(client),
            ),
        ]
    except KizenAPIError as exc:
        return [
            Check(
                _AREA,
                "reachable",
                Status.FAIL,
                f"Kizen answered {exc.status}: {_said(exc)}",
                "check kizen.base_url points at Kizen's API (https://app.go.kizen.com)",
            ),
            Check(_AREA, "credentials", Status.SKIPPED, "Kizen did not answer properly"),
        ]
    tls = "TLS certificate verified" if base.startswith("https://") else "plain HTTP"
    return [
        Check(_AREA, "reachable", Status.OK, f"{base} answered ({tls})"),
        Check(
            _AREA,
            "credentials",
            Status.OK,
            f"accepted for business {client.settings.business_id} "
            f"({page.count if page.count is not None else len(page.results)} objects visible)",
        ),
    ]


async def _object(client: KizenClient, index: int, sync: SyncConfig, side: KizenSide) -> None:
    key = f"syncs[{index}].object"
    try:
        side.schema = await client.get_object_schema(sync.object)
    except NotFoundError:
        try:
            names = sorted(o.name for o in await client.list_objects())
        except KizenAPIError:
            names = []
        listed = ", ".join(names[:30]) or "none visible to this key"
        side.checks.append(
            Check(
                _AREA,
                "object",
                Status.FAIL,
                f"Kizen has no object {sync.object!r} (or the key's user cannot see it)",
                f"set {key} to an object API name or UUID; objects: {listed} "
                "(contacts are client_client)",
                sync.name,
                key,
            )
        )
        return
    except PermissionDeniedError as exc:
        side.denied = side.denied or exc
        side.checks.append(
            Check(
                _AREA, "object", Status.FAIL, f"403 reading {sync.object!r}: {_said(exc)}",
                _PERMISSION_FIX, sync.name, key,
            )
        )  # fmt: skip
        return
    schema = side.schema
    side.checks.append(
        Check(
            _AREA,
            "object",
            Status.OK,
            f"{schema.name} ({schema.object_type}, {len(schema.fields)} fields)",
            sync=sync.name,
        )
    )


def _fields(index: int, sync: SyncConfig, schema: ObjectSchema, side: KizenSide) -> None:
    problems = validate_against_schema(sync, schema, index)
    for problem in problems:
        side.checks.append(
            Check(
                _AREA,
                "mapping",
                Status.FAIL,
                problem.message,
                f"edit {problem.key} in the sync file",
                sync.name,
                problem.key,
            )
        )
    if not problems:
        side.checks.append(
            Check(
                _AREA,
                "fields",
                Status.OK,
                f"all {len(sync.fields)} mapped fields exist and can be written",
                sync=sync.name,
            )
        )
    for i, mapping in enumerate(sync.fields):
        target = schema.field(mapping.field)
        if target is not None and target.field_type in OPTION_TYPES and not target.options:
            side.checks.append(
                Check(
                    _AREA,
                    f"options {target.name}",
                    Status.FAIL,
                    f"field {target.name!r} ({target.field_type}) lists no options, so no "
                    "value can be written to it",
                    f"add the options in Kizen, or remove the mapping of {target.name!r}",
                    sync.name,
                    f"syncs[{index}].fields[{i}].field",
                )
            )


async def _tags(
    client: KizenClient, index: int, sync: SyncConfig, schema: ObjectSchema, side: KizenSide
) -> None:
    for i, mapping in enumerate(sync.fields):
        target = schema.field(mapping.field)
        if target is None or target.field_type != "dynamictags":
            continue
        try:
            listed = await client.list_dynamic_tags(schema.name, target.id)
        except KizenAPIError as exc:
            if isinstance(exc, PermissionDeniedError):
                side.denied = side.denied or exc
            side.checks.append(
                Check(
                    _AREA,
                    f"tags {target.name}",
                    Status.FAIL,
                    f"the tags of {target.name!r} cannot be listed ({exc.status}: {_said(exc)})",
                    _PERMISSION_FIX,
                    sync.name,
                    f"syncs[{index}].fields[{i}].field",
                )
            )
            continue
        side.tags[target.name] = {tag.name: tag.id for tag in listed}
        side.checks.append(
            Check(
                _AREA, f"tags {target.name}", Status.OK, f"{len(listed)} tags listed",
                sync=sync.name,
            )
        )  # fmt: skip


async def _reads(
    client: KizenClient, sync: SyncConfig, schema: ObjectSchema, side: KizenSide
) -> None:
    try:
        page = await client.search_records(
            schema.name, page_size=1, field_names=[schema.identifier_field]
        )
    except (PermissionDeniedError, NotFoundError) as exc:
        side.checks.append(
            Check(
                _AREA, "read records", Status.FAIL,
                f"records cannot be read ({exc.status}: {_said(exc)})",
                _PERMISSION_FIX, sync.name,
            )
        )  # fmt: skip
        return
    count = f"{page.count} records" if page.count is not None else "records"
    side.checks.append(
        Check(
            _AREA,
            "read records",
            Status.OK,
            f"{count} readable; write permission is not tested (a check writes nothing)",
            sync=sync.name,
        )
    )


async def check_sync(
    client: KizenClient, index: int, sync: SyncConfig, *, reads: bool = True
) -> KizenSide:
    """The Kizen checks of one sync: object, mapped fields and options, tags, reads.

    Args:
        client: an entered client whose credentials were accepted.
        index: the sync's position in the file (problems name ``syncs[index]...``).
        sync: the sync.
        reads: also check that records can be read (one more request).
    """
    side = KizenSide()
    await _object(client, index, sync, side)
    if side.schema is None:
        return side
    _fields(index, sync, side.schema, side)
    await _tags(client, index, sync, side.schema, side)
    if reads:
        await _reads(client, sync, side.schema, side)
    return side


async def prepare_sync(
    client: KizenClient, index: int, sync: SyncConfig
) -> tuple[ObjectSchema, dict[str, dict[str, str]]]:
    """What a run reads before planning (schema, tag ids), checked as ``check`` would.

    Raises:
        ConfigError: the object, a mapped field or its tags would make the run fail; every
            problem names its key and carries the fix ``kizen-sync check`` prints.
        AuthenticationError: 401, the key, user id or business id is wrong;
            ``PermissionDeniedError``: 403, the key's user may not read the object or its
            tags. Both carry ``check``'s fix; like every refusal of the credentials they
            fail the run (exit 1), they are not a problem of the sync file.
        TransportError: Kizen could not be reached (the message names the host, the port or
            the certificate problem).
    """
    try:
        side = await check_sync(client, index, sync, reads=False)
    except PermissionDeniedError:
        raise  # not raised by check_sync: it records a 403 in ``side.denied``
    except AuthenticationError as exc:
        raise AuthenticationError(
            f"Kizen refused the API key, user id or business id ({_said(exc)}); "
            f"fix: {_credentials_fix(client)}",
            status=exc.status,
            method=exc.method,
            path=exc.path,
            request_id=exc.request_id,
            body=exc.body,
        ) from None
    if side.denied is not None:
        denied = side.denied
        raise PermissionDeniedError(
            f"the key is valid, but its user may not read {sync.object!r} or its tags "
            f"({_said(denied)}); fix: {_PERMISSION_FIX}",
            status=denied.status,
            method=denied.method,
            path=denied.path,
            request_id=denied.request_id,
            body=denied.body,
        )
    problems = [
        ConfigProblem(
            c.key or f"syncs[{index}]", f"{c.detail}; fix: {c.fix}" if c.fix else c.detail
        )
        for c in side.checks
        if c.status is Status.FAIL
    ]
    if problems or side.schema is None:
        raise ConfigError(problems)
    return side.schema, side.tags
