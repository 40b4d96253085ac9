"""The README tells the truth about what it documents: warehouses, sync options, commands,
exit statuses. Each check reads the README as a person would and compares it with the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from kizen_sync.cli import cli
from kizen_sync.config import DeleteConfig, KizenConfig, PartitionConfig, SyncConfig
from kizen_sync.output import ExitStatus
from kizen_sync.warehouse import supported_names

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_the_supported_warehouses_are_the_dialect_modules() -> None:
    line = next(x for x in README.splitlines() if x.startswith("**Supported warehouses:**"))
    named = re.findall(r"\(`([a-z0-9_]+)`\)", line)
    assert sorted(named) == supported_names()


def test_every_sync_option_is_documented_with_its_default() -> None:
    documented = set(re.findall(r"^\| `([a-z_.]+)`", README, flags=re.MULTILINE))
    for name in SyncConfig.model_fields:
        if name in {"source", "identity", "fields", "delete", "partitions"}:
            continue
        assert name in documented or f"{name}" in README, name
    for prefix, model in (("delete", DeleteConfig), ("partitions", PartitionConfig)):
        for name in model.model_fields:
            assert f"{prefix}.{name}" in documented, f"{prefix}.{name}"
    kizen = README.split("The `kizen:` section", 1)[1].split("## ", 1)[0]
    for name in KizenConfig.model_fields:
        assert f"`{name}`" in kizen, f"kizen.{name}"


def test_every_exit_status_is_in_the_table() -> None:
    section = README.split("### Exit status", 1)[1].split("###", 1)[0]
    rows = re.findall(r"^\| (\d) \|", section, flags=re.MULTILINE)
    assert [int(r) for r in rows] == [int(s) for s in ExitStatus]


def test_the_documented_commands_and_flags_exist() -> None:
    block = README.split("## The CLI", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    ctx = click.Context(cli)
    for line in block.splitlines():
        match = re.match(r"kizen-sync (\w+)(.*)", line.strip())
        if match is None:
            continue
        command = cli.get_command(ctx, match.group(1))
        assert command is not None, match.group(1)
        flags = set(re.findall(r"(--[a-z-]+)", match.group(2).split("#")[0]))
        known = {opt for p in command.params for opt in getattr(p, "opts", [])}
        assert flags <= known, (match.group(1), flags - known)
