"""Handlers of Kizen's records and schema-discovery routes (docs/kizen-api.md sections 2-3).

Handlers take ``(request, parsed JSON body, caller may write)`` and return a response; all
HTTP concerns that apply to every route (auth, knobs, logging) live in :mod:`.app`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kizen_sync.emulator.app import Api, json_response
from kizen_sync.emulator.business import FieldDef, ObjectDef
from kizen_sync.emulator.options import option_routes
from kizen_sync.emulator.service import RecordService, not_found
from kizen_sync.emulator.writes import ApiError, Op

__all__ = ["kizen_routes"]

_DEFAULT_PAGE_SIZE = 100
_MAX_PAGE_SIZE = 1000
_REC = "/api/records/{object_identifier}"
_BY_ID = _REC + "/{entity_id:kuuid}"


def _bool(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no", ""):
        return False
    raise ApiError(400, {name: ["Must be a valid boolean."], "non_field_errors": [], "fields": []})


def _paging(request: Request, body: dict[str, Any]) -> tuple[int, int]:
    """DRF page-number paging: bad/oversized ``page_size`` is clamped, a bad page is a 404."""
    raw_page = request.query_params.get("page", body.get("page", 1))
    raw_size = request.query_params.get("page_size", body.get("page_size", _DEFAULT_PAGE_SIZE))
    try:
        size = int(raw_size)
    except (TypeError, ValueError):
        size = _DEFAULT_PAGE_SIZE
    size = _DEFAULT_PAGE_SIZE if size <= 0 else min(size, _MAX_PAGE_SIZE)
    try:
        page = int(raw_page)
    except (TypeError, ValueError):
        raise ApiError(404, {"detail": "Invalid page.", "code": "not_found"}) from None
    if page < 1:
        raise ApiError(404, {"detail": "Invalid page.", "code": "not_found"})
    return page, size


def _page(request: Request, items: Sequence[Any], page: int, size: int) -> dict[str, Any]:
    """The ``count/next/previous/results/errors`` envelope with absolute links."""
    if page > 1 and (page - 1) * size >= len(items):
        raise ApiError(404, {"detail": "Invalid page.", "code": "not_found"})
    start = (page - 1) * size
    url = request.url
    nxt = str(url.include_query_params(page=page + 1)) if start + size < len(items) else None
    prev = None
    if page > 1:
        prev = str(
            url.include_query_params(page=page - 1) if page > 2 else url.remove_query_params("page")
        )
    return {
        "count": len(items),
        "next": nxt,
        "previous": prev,
        "results": list(items[start : start + size]),
        "errors": [],
    }


def _names(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [p.strip() for p in raw.split(",") if p.strip()]
    if isinstance(raw, list):
        return [str(p) for p in raw]
    return []


def _selected(
    obj: ObjectDef, request: Request, body: dict[str, Any] | None = None
) -> list[FieldDef]:
    """Fields to return: ``field_ids`` > ``field_names`` > ``field_category`` > all.

    A present-but-empty list means the object's default fields; unknown names are dropped
    silently, as Kizen does; hidden fields only with ``include_hidden_fields``.
    """
    q = request.query_params
    body = body or {}
    hidden = _bool(request, "include_hidden_fields", False)
    pool = [f for f in obj.fields if hidden or not f.spec.get("is_hidden")]
    for key, attr in (("field_ids", "id"), ("field_names", "name")):
        if key in q or key in body:
            wanted = _names(q[key] if key in q else body[key])
            if not wanted:
                return [f for f in pool if f.spec.get("is_default")]
            keep = {w.lower() if attr == "id" else w for w in wanted}
            return [f for f in pool if getattr(f, attr) in keep]
    if "field_category" in q:
        categories = set(_names(q["field_category"]))
        return [f for f in pool if f.spec.get("category") in categories]
    return pool


def _obj_body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, {"non_field_errors": ["Expected a JSON object."], "fields": []})
    return body


def _choice(body: dict[str, Any], key: str, allowed: tuple[str | None, ...]) -> str | None:
    value = body.get(key)
    if value not in allowed:
        raise ApiError(
            400, {key: [f'"{value}" is not a valid choice.'], "non_field_errors": [], "fields": []}
        )
    return value


def _touched(obj: ObjectDef, ops: list[Op]) -> list[FieldDef]:
    ids = {op.field.id for op in ops}
    return [f for f in obj.fields if f.id in ids or f.name == "updated"]


def kizen_routes(api: Api) -> list[Route]:
    """Every Kizen route the emulator serves, bound to the host's record service."""
    svc: RecordService = api.host.service

    def detail(
        obj: ObjectDef, rec: Any, fields: list[FieldDef], can_write: bool, **extra: Any
    ) -> dict[str, Any]:
        out = svc.render_record(obj, rec, fields, can_write=can_write)
        if extra:
            out = {**out, "display_name": svc.display_name(obj, rec), **extra}
        return out

    def get_record(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_identifier"])
        rec = svc.live(obj, request.path_params["entity_id"])
        _bool(request, "detail_summary", False)
        return json_response(detail(obj, rec, _selected(obj, request), can_write))

    def update_record(request: Request, body: Any, can_write: bool) -> Response:
        partial = request.method == "PATCH"
        data = _obj_body(body)
        if not partial and "fields" not in data:
            raise ApiError(400, {"non_field_errors": ["`fields` is required."], "fields": []})
        conflict = _choice(data, "archived_conflict", ("overwrite", None))
        obj = svc.object(request.path_params["object_identifier"])
        rec = svc.live(obj, request.path_params["entity_id"])
        ops = svc.update(obj, rec, data.get("fields", []), conflict)
        every = not partial or _bool(request, "return_all_fields", False)
        return json_response(
            detail(obj, rec, obj.fields if every else _touched(obj, ops), can_write)
        )

    def delete_record(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_identifier"])
        svc.archive(obj, svc.live(obj, request.path_params["entity_id"]))
        return Response(status_code=204)

    def unarchive(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_identifier"])
        rec = svc.unarchive(obj, request.path_params["entity_id"])
        if api.host.knobs.strict:  # the body of this answer is unknown: promise nothing
            return json_response({})
        return json_response(detail(obj, rec, obj.fields, can_write))

    def move(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_identifier"])
        rec = svc.live(obj, request.path_params["entity_id"])
        svc.move(obj, rec, _obj_body(body))
        return json_response(detail(obj, rec, obj.fields, can_write))

    def add(request: Request, body: Any, can_write: bool) -> Response:
        data = _obj_body(body)
        if "fields" not in data:
            raise ApiError(400, {"non_field_errors": ["`fields` is required."], "fields": []})
        mode = _choice(data, "unarchive", ("prompt", "unarchive", "overwrite", None))
        obj = svc.object(request.path_params["object_identifier"])
        rec, action = svc.create(obj, data["fields"], unarchive=mode)
        return json_response(detail(obj, rec, obj.fields, can_write, action=action), 201)

    def upsert(request: Request, body: Any, can_write: bool) -> Response:
        data = _obj_body(body)
        lookup = data.get("lookup_value")
        if not isinstance(lookup, str) or not lookup.strip():
            raise ApiError(
                400,
                {"lookup_value": ["This field is required."], "non_field_errors": [], "fields": []},
            )
        on_create = _choice(data, "oncreate_unarchive", ("prompt", "unarchive", "overwrite", None))
        on_update = _choice(data, "onupdate_archived_conflict", ("overwrite", None))
        obj = svc.object(request.path_params["object_identifier"])
        entries = data.get("fields") or []
        if not isinstance(entries, list):
            raise ApiError(400, {"non_field_errors": ["`fields` must be a list."], "fields": []})
        rec, action, ops = svc.upsert(
            obj, lookup, entries, oncreate_unarchive=on_create, onupdate_archived_conflict=on_update
        )
        every = action != "updated" or _bool(request, "return_all_fields", False)
        fields = obj.fields if every else _touched(obj, ops)
        return json_response(
            detail(obj, rec, fields, can_write, action=action), 200 if action == "updated" else 201
        )

    def lookup(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_identifier"])
        identifier = request.query_params.get("identifier")
        if not identifier:
            raise ApiError(400, {"identifier": ["This field is required."], "code": "required"})
        rec = svc.lookup(obj, identifier)
        if rec is None:
            raise not_found()
        all_fields = _bool(request, "all_fields", True)
        fields = (
            _selected(obj, request)
            if all_fields
            else [f for f in obj.fields if f.spec.get("is_default")]
        )
        return json_response(detail(obj, rec, fields, can_write))

    def search(request: Request, body: Any, can_write: bool) -> Response:
        data = _obj_body(body)
        obj = svc.object(request.path_params["object_identifier"])
        if data.get("query"):
            raise ApiError(
                400,
                {
                    "count": 0,
                    "next": None,
                    "previous": None,
                    "results": [],
                    "errors": [
                        "Filter `query` groups are not supported by the emulator; use `search`."
                    ],
                },
            )
        page, size = _paging(request, data)
        q = request.query_params
        text = q.get("search", data.get("search"))
        rows = svc.search(
            obj, text if isinstance(text, str) else None, q.get("ordering", data.get("ordering"))
        )
        envelope = _page(request, rows, page, size)
        fields = _selected(obj, request, data)
        envelope["results"] = [detail(obj, r, fields, can_write) for r in envelope["results"]]
        return json_response(envelope)

    def field_values(request: Request, body: Any, can_write: bool) -> Response:
        page, size = _paging(request, {})
        items = svc.field_values(
            request.path_params["entity_id"],
            request.path_params["field_id"],
            request.query_params.get("search"),
        )
        return json_response(_page(request, items, page, size))

    def list_objects(request: Request, body: Any, can_write: bool) -> Response:
        q = request.query_params
        custom_only = _bool(request, "custom_only", True)
        base = str(request.base_url).rstrip("/")
        objects = [
            o for o in svc.business.objects if not custom_only or o.spec.get("is_custom", True)
        ]
        for key in ("name", "object_name"):
            if key in q:
                objects = [
                    o
                    for o in objects
                    if (o.name if key == "name" else o.spec.get("object_name")) == q[key]
                ]
        if q.get("search"):
            needle = q["search"].casefold()
            objects = [
                o
                for o in objects
                if needle in o.name.casefold()
                or needle in str(o.spec.get("object_name", "")).casefold()
            ]
        page, size = _paging(request, {})
        envelope = _page(request, [o.minimal(base) for o in objects], page, size)
        envelope["access"] = {"view": True, "edit": can_write, "remove": can_write}
        return json_response(envelope)

    def get_object(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_ref"])
        base = str(request.base_url).rstrip("/")
        return json_response(obj.detail(base, embed_fields=not api.host.knobs.strict))

    def object_fields(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_ref"])
        return json_response([f.public() for f in obj.fields])

    def stages(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_pk"])
        if obj.object_type != "pipeline":
            raise not_found()
        return json_response(obj.stages)

    def tags_of(obj: ObjectDef, request: Request) -> Response:
        f = obj.by_id.get(request.path_params["field_id"])
        if f is None or f.field_type != "dynamictags":
            raise not_found()
        tags = [{"id": t["id"], "name": t["name"]} for t in f.spec.get("tags") or []]
        if request.query_params.get("search"):
            needle = request.query_params["search"].casefold()
            tags = [t for t in tags if needle in t["name"].casefold()]
        if request.query_params.get("ordering", "").lstrip("-") == "name":
            tags.sort(
                key=lambda t: t["name"].casefold(),
                reverse=request.query_params["ordering"].startswith("-"),
            )
        page, size = _paging(request, {})
        return json_response(_page(request, tags, page, size))

    def pipeline_tags(request: Request, body: Any, can_write: bool) -> Response:
        obj = svc.object(request.path_params["object_pk"])
        if obj.is_contacts:  # contacts serve their tags from /api/client/... (BC)
            raise not_found()
        return tags_of(obj, request)

    def contact_tags(request: Request, body: Any, can_write: bool) -> Response:
        return tags_of(svc.object("client_client"), request)

    co = "/api/custom-objects"
    return [
        api.route(co, "GET", list_objects),
        api.route(co + "/{object_ref}", "GET", get_object),
        api.route(co + "/{object_ref}/fields", "GET", object_fields),
        api.route(
            "/api/pipelines/{object_pk:kuuid}/fields/{field_id:kuuid}/tags", "GET", pipeline_tags
        ),
        api.route("/api/pipelines/{object_pk:kuuid}/stages", "GET", stages),
        api.route("/api/client/fields/{field_id:kuuid}/tags", "GET", contact_tags),
        *option_routes(api),
        api.route(_REC + "/add", "POST", add, write=True),
        api.route(_REC + "/lookup", "GET", lookup),
        api.route(_REC + "/upsert", "POST", upsert, write=True),
        api.route(_REC + "/search", "POST", search),
        api.route(
            "/api/records/{entity_id:kuuid}/field-values/{field_id:kuuid}", "GET", field_values
        ),
        api.route(_BY_ID + "/unarchive", "PATCH", unarchive, write=True),
        api.route(_BY_ID + "/move", "PATCH", move, write=True),
        api.route(_BY_ID, "GET", get_record),
        api.route(_BY_ID, "PUT", update_record, write=True),
        api.route(_BY_ID, "PATCH", update_record, write=True),
        api.route(_BY_ID, "DELETE", delete_record, write=True),
    ]
