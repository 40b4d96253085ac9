"""Adding an option to a field: ``POST /api/custom-objects/{object_pk}/fields/{field_pk}/options``.

Kizen's live OpenAPI lists this route ("add field option", body
``CustomObjectFieldOptionWriteRequest``: ``name`` required, ``order`` and ``meta`` optional,
answer 201), and Kizen's own CLI adds options with it to every option-bearing field type,
``dynamictags`` included (a dynamic tag is an option of its field). The object is addressed by
UUID there, so only a UUID is accepted here. Where no source shows Kizen's answer, the
emulator's choices are listed in ``README.md`` of this package: a name used already by an
option of the field (case-insensitive) is a 400 on ``name``, and a field without options is a
400 too.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kizen_sync.emulator.app import Api, json_response
from kizen_sync.emulator.business import FieldDef
from kizen_sync.emulator.service import RecordService, not_found
from kizen_sync.emulator.writes import ApiError

__all__ = ["OPTION_FIELD_TYPES", "add_option", "option_routes"]

#: Field types that hold options (the set Kizen's CLI adds options to).
OPTION_FIELD_TYPES = frozenset(
    {
        "dropdown",
        "radio",
        "status",
        "choices",
        "selector",
        "checkboxes",
        "dynamictags",
        "yesnomaybe",
    }
)
_NAME_LIMIT = 255


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, {field: [message]})


def add_option(field: FieldDef, body: Any) -> dict[str, Any]:
    """Add the option (or dynamic tag) ``body`` describes to ``field``; return its read shape.

    Raises:
        ApiError: 400 for a field without options, a missing, blank, too long or taken name.
    """
    if field.field_type not in OPTION_FIELD_TYPES:
        raise ApiError(
            400,
            {"non_field_errors": [f"Field '{field.name}' ({field.field_type}) has no options."]},
        )
    if not isinstance(body, dict):
        raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    name = body.get("name")
    if name is None:
        raise _bad("name", "This field is required.")
    if not isinstance(name, str):
        raise _bad("name", "Not a valid string.")
    name = name.strip()
    if not name:
        raise _bad("name", "This field may not be blank.")
    if len(name) > _NAME_LIMIT:
        raise _bad("name", f"Ensure this field has no more than {_NAME_LIMIT} characters.")
    tags = field.field_type == "dynamictags"
    by_label = field.tags_by_label if tags else field.options_by_label
    if name.casefold() in by_label:
        raise _bad("name", f"An option named '{name}' already exists on this field.")
    listed: list[dict[str, Any]] = field.spec.setdefault("tags" if tags else "options", [])
    order = body.get("order")
    option_id = str(uuid.uuid4())
    option: dict[str, Any] = {
        "id": option_id,
        "code": "",
        "name": name,
        "order": order if isinstance(order, int) else len(listed) + 1,
        "meta": body.get("meta") if isinstance(body.get("meta"), dict) else {},
    }
    listed.append(option)
    (field.tags_by_id if tags else field.options_by_id)[option_id] = option
    by_label[name.casefold()] = option
    return option


def option_routes(api: Api) -> list[Route]:
    """The route, bound to the host's record service."""
    svc: RecordService = api.host.service

    def create(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_pk"])
        field = obj.by_id.get(request.path_params["field_id"])
        if field is None:
            raise not_found()
        return json_response(add_option(field, body), 201)

    path = "/api/custom-objects/{object_pk:kuuid}/fields/{field_id:kuuid}/options"
    return [api.route(path, "POST", create, write=True)]
