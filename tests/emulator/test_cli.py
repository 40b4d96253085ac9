"""``kizen-sync emulator`` in a process of its own: the knobs a user sets at start apply.

``--strict`` and ``--ignore-field`` are how someone outside the test suite makes the emulator
refuse unverified shapes, or accept a write and not apply it (what ``verify:`` catches).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kizen_sync.emulator.emulator import DEMO_API_KEY, DEMO_BUSINESS_ID, DEMO_USER_ID

HEADERS = {"X-API-KEY": DEMO_API_KEY, "X-USER-ID": DEMO_USER_ID, "X-BUSINESS-ID": DEMO_BUSINESS_ID}
#: Generous: a busy machine may take long to import and start the server.
START_TIMEOUT_S = 120


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run ``kizen-sync emulator --port 0 <args>``; yield the base URL it prints."""
    exe = Path(sys.executable).with_name("kizen-sync")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIZEN_")}
    proc = subprocess.Popen(
        [str(exe), "emulator", "--port", "0", *request.param],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the server is up (or the process ended)
        assert first.startswith("Kizen emulator serving "), first
        yield first.split()[-1]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("served", [["--strict", "--ignore-field", "tier"]], indirect=True)
def test_strict_and_ignored_fields_from_the_command_line(served: str) -> None:
    with httpx.Client(base_url=served, headers=HEADERS, timeout=START_TIMEOUT_S) as http:
        knobs = http.get("/_emulator/knobs").json()
        assert knobs["strict"] is True
        assert knobs["ignored_fields"] == ["tier"]
        obj = http.get("/api/custom-objects/accounts").json()
        # strict: the object detail embeds no field list (whether Kizen's does is unknown)
        assert "fields" not in obj
        listed = http.get(f"/api/custom-objects/{obj['id']}/fields").json()
        tier = next(f for f in listed if f["name"] == "tier")
        gold = next(o["id"] for o in tier["options"] if o["name"] == "Gold")
        r = http.post(
            "/api/records/accounts/upsert",
            json={
                "lookup_value": "Ignored Co",
                "fields": [
                    {"name": "name", "value": "Ignored Co"},
                    {"name": "tier", "value": {"id": gold}},
                ],
            },
        )
        assert r.status_code == 201, r.text
        record = http.get(
            f"/api/records/accounts/{r.json()['id']}", params={"field_names": "tier"}
        ).json()
        # accepted, not applied: the record holds no tier (a field without a value is left out)
        assert [v for v in record["fields"].values() if v["name"] == "tier"] == []
        # strict: a rating, which no source shows written, is refused with the reason
        r = http.patch(
            f"/api/records/accounts/{record['id']}",
            json={"fields": [{"name": "satisfaction", "value": 4}]},
        )
        assert r.status_code == 400
        assert "unverified" in r.json()["fields"][0]["value"][0]
