"""``python -m kizen_sync.emulator``: same as ``kizen-sync emulator``."""

from __future__ import annotations

from kizen_sync.emulator.cli import emulator

emulator(prog_name="python -m kizen_sync.emulator")
