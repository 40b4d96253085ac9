"""``kizen-sync check``: every pre-flight check of one sync file, writing nothing.

Order: the credentials in the environment, then Kizen (reachable over TLS, credentials 401 vs
403, then per sync the object, every mapped field and its options, the dynamic tags, reading
records), then the warehouse (connection, the state tables and the right to create them, each
sync's source and columns, and the source's option and tag values against what Kizen has).
Kizen's per-sync checks are skipped when Kizen cannot be reached or refuses the credentials;
the warehouse is checked regardless, so one run of ``check``
shows every problem that does not hide another.
"""

from __future__ import annotations

import asyncio

import httpx

from kizen_sync.client import ClientSettings, KizenClient
from kizen_sync.config import ProjectConfig, SyncConfig
from kizen_sync.errors import ConfigError
from kizen_sync.preflight.kizen import check_account, check_sync
from kizen_sync.preflight.results import Check, CheckReport, Status
from kizen_sync.preflight.warehouse import KizenFound, check_warehouse
from kizen_sync.warehouse import Warehouse

__all__ = ["acheck_project", "check_project"]


def _settings_problems(config: ProjectConfig, error: ConfigError) -> list[Check]:
    checks = []
    for problem in error.problems:
        fix = (
            f"export {config.kizen.api_key_env}=<the key> (never in the sync file)"
            if problem.key == "kizen.api_key_env"
            else f"set {problem.key} in the sync file or its environment variable"
        )
        checks.append(
            Check("kizen", "credentials", Status.FAIL, problem.message, fix, key=problem.key)
        )
    return checks


#: A pre-flight answers in seconds: two attempts, not a run's patient retries of a host that
#: refuses connections.
_PATIENCE = {"max_attempts": 2, "retry_budget_s": 15.0}


async def _kizen(
    settings: ClientSettings,
    syncs: list[tuple[int, SyncConfig]],
    transport: httpx.AsyncBaseTransport | None,
) -> tuple[list[Check], dict[str, KizenFound]]:
    """Kizen's checks, and per sync what they read (for the warehouse's values check)."""
    settings = settings.model_copy(update=_PATIENCE)
    found: dict[str, KizenFound] = {}
    async with KizenClient(settings, transport=transport) as client:
        checks = await check_account(client)
        if any(c.status is Status.FAIL for c in checks):
            why = next(c.check for c in checks if c.status is Status.FAIL)
            checks.extend(
                Check("kizen", "object", Status.SKIPPED, f"{why} failed", sync=s.name)
                for _, s in syncs
            )
            return checks, found
        for index, sync in syncs:
            side = await check_sync(client, index, sync)
            checks.extend(side.checks)
            if side.schema is not None:
                found[sync.name] = (side.schema, side.tags)
    return checks, found


async def acheck_project(
    config: ProjectConfig,
    sync_names: list[str] | None = None,
    *,
    client_settings: ClientSettings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    warehouse: Warehouse | None = None,
) -> CheckReport:
    """Run every check; never writes to Kizen nor to the warehouse.

    Args:
        config: the validated sync file.
        sync_names: only these syncs (default: all).
        client_settings: Kizen connection; default from the file and the environment.
        transport: httpx transport for tests.
        warehouse: an open warehouse for tests; default one from the file.

    Raises:
        ConfigError: a name in ``sync_names`` is not a sync of the file.
    """
    syncs = [
        (config.syncs.index(config.sync(name)), config.sync(name))
        for name in (sync_names or [s.name for s in config.syncs])
    ]
    report = CheckReport()
    found: dict[str, KizenFound] = {}
    try:
        settings = client_settings or config.kizen.client_settings()
    except ConfigError as exc:
        report.checks.extend(_settings_problems(config, exc))
    else:
        checks, found = await _kizen(settings, syncs, transport)
        report.checks.extend(checks)
    report.checks.extend(await asyncio.to_thread(check_warehouse, config, syncs, warehouse, found))
    return report


def check_project(
    config: ProjectConfig,
    sync_names: list[str] | None = None,
    *,
    client_settings: ClientSettings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    warehouse: Warehouse | None = None,
) -> CheckReport:
    """Blocking twin of :func:`acheck_project`."""
    return asyncio.run(
        acheck_project(
            config,
            sync_names,
            client_settings=client_settings,
            transport=transport,
            warehouse=warehouse,
        )
    )
