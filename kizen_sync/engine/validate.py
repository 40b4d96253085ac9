"""``kizen-sync validate``: check a whole sync file and report every problem at once.

A file is checked in three layers, each naming the offending key: its own rules (the
models), the warehouse (tables, queries and every mapped column exist), and Kizen's live
schema (objects and fields exist, types fit, options exist). A problem in one sync never hides
the problems of the next; only a file that cannot be read at all stops before the warehouse.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.config import ProjectConfig, load_config, validate_against_schema
from kizen_sync.engine.runner import client_settings_from_config
from kizen_sync.errors import (
    ConfigError,
    ConfigProblem,
    FatalError,
    KizenSyncError,
    NotFoundError,
    RetryableError,
)
from kizen_sync.warehouse import Source, Warehouse

__all__ = ["validate_file"]


def _warehouse_problems(config: ProjectConfig, warehouse: Warehouse) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for index, sync in enumerate(config.syncs):
        try:
            Source(warehouse, sync)
        except KizenSyncError as exc:
            each = exc.context.get("column_problems")
            if each:  # every unknown column is a problem of its own, under its own key
                problems.extend(ConfigProblem(f"syncs[{index}].{k}", m) for k, m in each)
                continue
            key = str(exc.context.get("key") or "source")
            problems.append(ConfigProblem(f"syncs[{index}].{key}", exc.message))
    return problems


async def _kizen_problems(
    config: ProjectConfig, settings: ClientSettings, transport: httpx.AsyncBaseTransport | None
) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    async with KizenClient(settings, transport=transport) as client:
        for index, sync in enumerate(config.syncs):
            try:
                schema = await client.get_object_schema(sync.object)
            except NotFoundError:
                problems.append(
                    ConfigProblem(f"syncs[{index}].object", f"Kizen has no object {sync.object!r}")
                )
                continue
            problems.extend(validate_against_schema(sync, schema, index))
    return problems


def validate_file(
    path: str | Path,
    *,
    check_kizen: bool = True,
    client_settings: ClientSettings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    warehouse: Warehouse | None = None,
) -> list[ConfigProblem]:
    """Every problem of the sync file at ``path``; an empty list when it is valid.

    Args:
        path: the sync file.
        check_kizen: also check the mappings against Kizen's live schema (needs the
            credentials; a missing one is reported as a problem).
        client_settings: Kizen connection (default: from the file and the environment).
        transport: httpx transport for tests.
        warehouse: an existing warehouse (default: the file's).

    Raises:
        FatalError: Kizen refused the credentials or could not be reached; the warehouse
            could not be reached. These are not problems of the file, and say so.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        return list(exc.problems)
    owned = warehouse is None
    wh = warehouse or Warehouse(
        config.warehouse.url,
        state_schema=config.warehouse.state_schema,
        table_prefix=config.warehouse.table_prefix,
    )
    try:
        problems = _warehouse_problems(config, wh)
    finally:
        if owned:
            wh.dispose()
    if not check_kizen:
        return problems
    try:
        settings = client_settings or client_settings_from_config(config)
    except ConfigError as exc:
        return [*problems, *exc.problems]
    try:
        problems += asyncio.run(_kizen_problems(config, settings, transport))
    except RetryableError as exc:
        raise FatalError(f"cannot read Kizen's schema: {exc.message}") from None
    return problems


def describe(problems: list[ConfigProblem]) -> dict[str, Any]:
    """``{"valid": bool, "problems": [{"key", "message"}]}`` for the JSON document."""
    return {
        "valid": not problems,
        "problems": [{"key": p.key, "message": p.message} for p in problems],
    }
