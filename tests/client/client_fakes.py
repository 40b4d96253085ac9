"""Helpers of the client tests: demo credentials and a scriptable MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from kizen_sync.client import ClientSettings

API_KEY = "demo-api-key"
USER_ID = "916dac1b-5640-4268-9324-06132f342488"
BUSINESS_ID = "5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
RECORD_ID = "7f1e2d3c-0000-4000-8000-000000000001"


def make_settings(**overrides: Any) -> ClientSettings:
    values: dict[str, Any] = {
        "base_url": "https://kizen.test",
        "api_key": API_KEY,
        "user_id": USER_ID,
        "business_id": BUSINESS_ID,
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
        "max_retry_after_s": 0.05,
    }
    values.update(overrides)
    return ClientSettings(**values)


def record_json(record_id: str = RECORD_ID, **fields: Any) -> dict[str, Any]:
    """A record response with one field per keyword (field id = f"f-{name}")."""
    return {
        "id": record_id,
        "object_type": "standard",
        "fields": {
            f"f-{name}": {
                "id": f"f-{name}",
                "name": name,
                "field_type": "text",
                "display_name": name.title(),
                "value": value,
            }
            for name, value in fields.items()
        },
    }


Responder = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeKizen:
    """A MockTransport handler answering scripted responses per (method, path)."""

    scripts: dict[tuple[str, str], list[Responder | httpx.Response]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, *responses: Responder | httpx.Response) -> None:
        """Answer the next requests to ``method path`` with ``responses`` (last one repeats)."""
        self.scripts[(method, path)] = list(responses)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        script = self.scripts.get((request.method, request.url.path))
        if not script:
            return httpx.Response(404, json={"detail": "Not found.", "code": "not_found"})
        step = script.pop(0) if len(script) > 1 else script[0]
        return step(request) if callable(step) else step

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]
