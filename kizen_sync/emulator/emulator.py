"""The :class:`Emulator`: a business, its records, knobs, and the ASGI app that serves them.

Tests mount ``emu.app`` in-process with ``httpx.ASGITransport``; demos and benchmarks use
:meth:`Emulator.serve`, which runs uvicorn (httptools + uvloop, access log off) on loopback
in a background thread.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import uvicorn

from kizen_sync.emulator.app import build_app, quiet_dropped_connections
from kizen_sync.emulator.business import Business, load_business
from kizen_sync.emulator.knobs import Faults, Knobs, RateLimiter, RequestLog
from kizen_sync.emulator.proxy import ValidatingProxy
from kizen_sync.emulator.routes import kizen_routes
from kizen_sync.emulator.service import RecordService
from kizen_sync.emulator.store import RecordStore
from kizen_sync.emulator.writes import ApiError

__all__ = [
    "DEMO_API_KEY",
    "DEMO_BUSINESS_ID",
    "DEMO_BUSINESS_PATH",
    "DEMO_READONLY_KEY",
    "DEMO_USER_ID",
    "Emulator",
]

DEMO_BUSINESS_PATH = Path(__file__).with_name("demo_business.json")
DEMO_API_KEY = "demo-api-key"
DEMO_READONLY_KEY = "demo-readonly-key"
DEMO_USER_ID = "916dac1b-5640-4268-9324-06132f342488"
DEMO_BUSINESS_ID = "5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
_START_TIMEOUT_S = 10.0


def _pick(option: str | None, env: str, default: str) -> tuple[str, str]:
    if option:
        return option, "option"
    if os.environ.get(env):
        return os.environ[env], "env"
    return default, "default"


class Emulator:
    """A local Kizen API for one business.

    Args:
        business: the parsed business (objects, fields, team, seed records).
        state_path: SQLite file to persist records in; ``None`` keeps them in memory.
            An existing file wins over the business's seed records.
        api_key, user_id, business_id: credentials to accept; each falls back to
            ``KIZEN_API_KEY`` / ``KIZEN_USER_ID`` / ``KIZEN_BUSINESS_ID``, then to the demo
            defaults of docs/architecture.md (the business id of the file for the business).
        knobs: initial fault/latency knobs (``Knobs(strict=True)`` for strict mode).
        validate: put a :class:`~kizen_sync.emulator.proxy.ValidatingProxy` in front of the
            app (``emulator.proxy``), grading every request against the evidence; default
            :attr:`validate_by_default` (the test suite turns it on for every emulator).
    """

    #: Whether emulators validate requests unless told otherwise (tests set it).
    validate_by_default: ClassVar[bool] = False
    #: Every emulator created in this process and still alive (the test suite checks them).
    instances: ClassVar[weakref.WeakSet[Emulator]] = weakref.WeakSet()

    def __init__(
        self,
        business: Business,
        *,
        state_path: str | Path | None = None,
        api_key: str | None = None,
        user_id: str | None = None,
        business_id: str | None = None,
        knobs: Knobs | None = None,
        validate: bool | None = None,
    ) -> None:
        self.business = business
        key, self.api_key_source = _pick(api_key, "KIZEN_API_KEY", DEMO_API_KEY)
        user, _ = _pick(user_id, "KIZEN_USER_ID", DEMO_USER_ID)
        biz, _ = _pick(business_id, "KIZEN_BUSINESS_ID", business.id or DEMO_BUSINESS_ID)
        self._credentials = (key, user, biz)
        self._knobs = knobs or Knobs()
        self.faults = Faults(self._knobs.seed)
        self.limiter = RateLimiter()
        self.request_log = RequestLog()
        self.service = RecordService(
            business, RecordStore(Path(state_path) if state_path else None)
        )
        self.service.ignored_fields = frozenset(self._knobs.ignored_fields)
        with self.service.store.lock:
            if not self.service.store.load():
                self._seed()
        app = build_app(self, kizen_routes)
        self.proxy: ValidatingProxy | None = None
        if self.validate_by_default if validate is None else validate:
            self.proxy = ValidatingProxy(app, business)
        self.app = self.proxy or app
        Emulator.instances.add(self)

    @classmethod
    def demo(
        cls,
        state_path: str | Path | None = None,
        api_key: str | None = None,
        user_id: str | None = None,
        business_id: str | None = None,
        knobs: Knobs | None = None,
        validate: bool | None = None,
    ) -> Emulator:
        """The demo business of docs/architecture.md."""
        return cls.from_file(
            DEMO_BUSINESS_PATH,
            state_path=state_path,
            api_key=api_key,
            user_id=user_id,
            business_id=business_id,
            knobs=knobs,
            validate=validate,
        )

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Emulator:
        """An emulator for the business file at ``path`` (format in :mod:`.business`)."""
        return cls(load_business(Path(path)), **options)

    def _seed(self) -> None:
        for object_name, rows in self.business.seed_records.items():
            obj = self.service.object(object_name)
            for row in rows:
                entries = [{"name": k, "value": v} for k, v in row.get("fields", {}).items()]
                rec, _ = self.service.create(obj, entries, record_id=row.get("id"))
                if row.get("created"):
                    rec.created = rec.updated = row["created"]
                    self.service.store.save(rec, rec.values.get(obj.identifier.id))

    # --- configuration ------------------------------------------------------------------------

    @property
    def credentials(self) -> tuple[str, str, str]:
        """(api_key, user_id, business_id) with full access."""
        return self._credentials

    @property
    def readonly_key(self) -> str:
        """The API key that may read but not write (writes answer 403)."""
        return DEMO_READONLY_KEY

    @property
    def knobs(self) -> Knobs:
        """Current knobs."""
        return self._knobs

    def set_knobs(self, **changes: Any) -> Knobs:
        """Change knobs at runtime; a new ``seed`` restarts the fault sequence.

        Raises:
            ValueError: unknown knob or out-of-range value (nothing is changed).
        """
        self._knobs = self._knobs.updated(changes)
        self.service.ignored_fields = frozenset(self._knobs.ignored_fields)
        if "seed" in changes:
            self.faults.reseed(self._knobs.seed)
        return self._knobs

    # --- direct access for tests and demos ----------------------------------------------------

    def records(
        self, object_identifier: str, include_archived: bool = False
    ) -> list[dict[str, Any]]:
        """GET-shaped records of an object (all fields) plus ``archived``, in creation order."""
        svc = self.service
        with svc.store.lock:
            obj = svc.object(object_identifier)
            return [
                {**svc.render_record(obj, r, obj.fields, can_write=True), "archived": r.archived}
                for r in svc.store.objects_records(obj.id).values()
                if include_archived or not r.archived
            ]

    def get_record(self, object_identifier: str, record_id: str) -> dict[str, Any] | None:
        """One record (archived ones too, flagged), or ``None`` when it does not exist."""
        svc = self.service
        with svc.store.lock:
            obj = svc.object(object_identifier)
            rec = svc.store.by_id.get(record_id.lower())
            if rec is None or rec.object_id != obj.id:
                return None
            return {
                **svc.render_record(obj, rec, obj.fields, can_write=True),
                "archived": rec.archived,
            }

    def create_record(self, object_identifier: str, values: Mapping[str, Any]) -> str:
        """Create a record from ``{field api name: write value}`` with the API's validation.

        Raises:
            ValueError: the write was rejected; the message holds Kizen's error body.
        """
        svc = self.service
        with svc.store.lock:
            try:
                obj = svc.object(object_identifier)
                rec, _ = svc.create(obj, [{"name": k, "value": v} for k, v in values.items()])
            except ApiError as err:
                raise ValueError(f"{err.status}: {err.body}") from None
            return rec.id

    def upload_file(self, name: str) -> str:
        """Upload a file to the business (what Kizen's upload flow ends with); returns its id,
        the only kind of id a ``files`` field accepts.
        """
        with self.service.store.lock:
            return self.service.upload_file(name)

    def schema(self, object_identifier: str) -> dict[str, Any]:
        """The object as ``GET /api/custom-objects/{id}`` returns it (fields, categories)."""
        return self.service.object(object_identifier).detail("http://127.0.0.1")

    def close(self) -> None:
        """Close the state file, if any."""
        with self.service.store.lock:
            self.service.store.close()

    # --- real HTTP ------------------------------------------------------------------------------

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve over real HTTP in a background thread; yields the base URL.

        ``port=0`` picks a free port. The server stops when the block exits.

        Raises:
            RuntimeError: uvicorn did not start within 10 seconds.
        """
        quiet_dropped_connections()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        bound_port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            loop="uvloop",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_keep_alive=30,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="kizen-emulator", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError("the emulator's HTTP server did not start")
            time.sleep(0.01)
        url_host = f"[{host}]" if ":" in host else host
        try:
            yield f"http://{url_host}:{bound_port}"
        finally:
            server.should_exit = True
            thread.join(timeout=_START_TIMEOUT_S)
            sock.close()
