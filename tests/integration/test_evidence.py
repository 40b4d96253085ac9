"""The whole demo against the emulator, graded by the evidence.

- Behind the validating proxy the demo sends no route or shape that no source supports, and
  the shapes it sends that are only documented-but-unverified are exactly the multi-valued
  writes and the ratings the docs list (docs/architecture.md, "Wire shapes").
- Against a ``strict`` emulator (which refuses unverified shapes too) the same demo shows
  where it depends on them: the records that fail are exactly those writing a multi-valued
  field or a rating, each failure names the shape and the sources, and every other record
  syncs.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from kizen_sync.client import ClientSettings
from kizen_sync.demo import run_demo, seed_warehouse, write_sync_file
from kizen_sync.emulator import Emulator, Knobs
from kizen_sync.emulator.evidence import Tier
from kizen_sync.engine import SyncRunner

MULTI = ("(dynamictags)", "(checkboxes)", "(relationship)")
#: No source shows a rating written (only its options, live): sent as an option, unverified.
UNVERIFIED = (*MULTI, "(rating)")


def _demo(emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    api_key, user_id, business_id = emu.credentials
    monkeypatch.setenv("KIZEN_API_KEY", api_key)
    monkeypatch.setenv("KIZEN_USER_ID", user_id)
    monkeypatch.setenv("KIZEN_BUSINESS_ID", business_id)
    with emu.serve(host="127.0.0.1", port=0) as base_url:
        return run_demo(tmp_path, base_url, Console(file=io.StringIO(), width=200))


def test_the_demo_sends_only_supported_routes_and_shapes(tmp_path, monkeypatch) -> None:
    emu = Emulator.demo(validate=True)
    result = _demo(emu, tmp_path, monkeypatch)
    assert [r.status for r in result.first] == ["success", "success"]
    assert emu.proxy is not None
    assert emu.proxy.violations() == []
    unverified = {f.what for f in emu.proxy.unverified()}
    assert unverified  # the demo does write multi-valued fields and a rating
    assert all(any(m in what for m in UNVERIFIED) for what in unverified), unverified
    assert any("(rating) as an option" in what for what in unverified), unverified
    assert all(f.tier is Tier.UNVERIFIED for f in emu.proxy.unverified())


def test_a_strict_emulator_shows_which_records_depend_on_unverified_shapes(tmp_path) -> None:
    emu = Emulator.demo(validate=True, knobs=Knobs(strict=True))
    sync_file = write_sync_file(tmp_path, tmp_path / "warehouse.db")
    seed_warehouse(tmp_path / "warehouse.db")
    api_key, user_id, business_id = emu.credentials
    with emu.serve(host="127.0.0.1", port=0) as base_url:
        settings = ClientSettings(
            base_url=base_url, api_key=api_key, user_id=user_id, business_id=business_id
        )
        with SyncRunner.from_file(sync_file, client_settings=settings) as runner:
            reports = [runner.run(name) for name in ("contacts", "accounts")]
    failures = [f for report in reports for f in report.failures]
    assert failures, "the demo writes tags, products and ratings, which no source confirms"
    for failure in failures:
        text = str(failure["message"])
        assert "strict:" in text
        assert "unverified" in text
        assert any(m in text for m in UNVERIFIED), text
        if any(m in text for m in MULTI):
            assert "AE documents bare ids" in text  # the sources are named
        else:
            assert "no source shows a rating written" in text
    # Records without a multi-valued value sync: the dependency shows only where it is.
    assert sum(r.counts.created for r in reports) > 0
    assert emu.proxy is not None
    assert emu.proxy.violations() == []
