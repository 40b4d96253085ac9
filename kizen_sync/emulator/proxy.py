"""A validating proxy in front of the emulator: every request is graded against the evidence.

Tests that drive the connector against the emulator wrap its app in :class:`ValidatingProxy`
(``Emulator(validate=True)``); the proxy reads each ``/api`` request on its way in, grades it
with :func:`~kizen_sync.emulator.evidence.check_request`, records what it found and passes the
request on unchanged. A test then fails when the connector sent a route or a shape no source
supports (:meth:`ValidatingProxy.violations`), and can list the merely unverified ones it
depends on (:meth:`ValidatingProxy.unverified`).

It is an ASGI layer rather than a separate HTTP hop so that it sits in front of the emulator
both in process (``httpx.ASGITransport``) and over real HTTP (``Emulator.serve``).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kizen_sync.emulator.business import Business
from kizen_sync.emulator.evidence import Finding, Tier, check_request

__all__ = ["ValidatingProxy"]


class ValidatingProxy:
    """ASGI middleware recording the evidence findings of every ``/api`` request.

    Args:
        app: the emulator's ASGI app.
        business: the emulated business (field types of ``fields`` entries).
    """

    def __init__(self, app: ASGIApp, business: Business) -> None:
        self.app = app
        self.business = business
        self._lock = threading.Lock()
        self._findings: Counter[Finding] = Counter()
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Grade an ``/api`` request, then hand it (body replayed) to the emulator."""
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self._grade(scope, b"".join(chunks))

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _grade(self, scope: Scope, raw: bytes) -> None:
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        query = [
            part.split("=", 1)[0]
            for part in scope.get("query_string", b"").decode("latin-1").split("&")
            if part
        ]
        found = check_request(scope["method"], scope["path"], query, body, self.business)
        with self._lock:
            self.requests += 1
            self._findings.update(found)

    def findings(self) -> dict[Finding, int]:
        """Every finding so far with how often it was seen."""
        with self._lock:
            return dict(self._findings)

    def violations(self) -> list[Finding]:
        """Requests no source supports (a connector test fails on any of these)."""
        return sorted((f for f in self.findings() if f.tier is Tier.UNSUPPORTED), key=str)

    def unverified(self) -> list[Finding]:
        """Shapes a source describes but nothing confirms (what strict mode refuses too)."""
        return sorted((f for f in self.findings() if f.tier is Tier.UNVERIFIED), key=str)

    def reset(self) -> None:
        """Forget every finding."""
        with self._lock:
            self._findings.clear()
            self.requests = 0
