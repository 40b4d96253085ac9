"""Resources: the warehouse, the Kizen connection and the state/audit store.

Each resource only holds configuration (shown on the UI's resource page) and hands out the
plain :mod:`kizen_sync` object, the way ``dagster-fivetran``'s workspace hands out its client:
the library stays free of Dagster and the same objects serve the CLI. Secrets never appear as
values: the API key is always a :class:`dagster.EnvVar`, resolved when a run starts, and so is
a warehouse URL that the sync file takes from the environment.
"""

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from pydantic import Field, SecretStr

from kizen_sync.client import ClientSettings
from kizen_sync.config import ProjectConfig
from kizen_sync.engine.runner import SyncRunner
from kizen_sync.warehouse import StateStore, Warehouse

__all__ = [
    "KizenResource",
    "StateStoreResource",
    "WarehouseResource",
    "build_resources",
    "open_runner",
]

#: A whole value of the form ``${VAR}``: the sync file takes it from the environment.
_WHOLE_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class WarehouseResource(dg.ConfigurableResource):
    """The SQL warehouse: the sync sources, and kizen-sync's state, audit and run tables."""

    url: str = Field(description="SQLAlchemy URL of the warehouse (file key warehouse.url).")
    state_schema: str | None = Field(
        default=None, description="Schema of the state/audit tables (PostgreSQL); None: default."
    )
    table_prefix: str = Field(
        default="kizen_sync_", description="Prefix of the state, audit and runs tables."
    )

    def get_warehouse(self) -> Warehouse:
        """A new :class:`Warehouse` owning its engine; use it in a ``with`` block to close it."""
        return Warehouse(self.url, state_schema=self.state_schema, table_prefix=self.table_prefix)


class KizenResource(dg.ConfigurableResource):
    """The Kizen business the syncs write to; the API key comes from the environment."""

    base_url: str = Field(description="Scheme and host of the Kizen API (or the local emulator).")
    business_id: str = Field(description="X-BUSINESS-ID: the business every request targets.")
    user_id: str = Field(description="X-USER-ID: the user the API key belongs to.")
    api_key: str = Field(description="X-API-KEY; always given as an environment variable.")
    requests_per_second: float | None = Field(
        default=None, description="Known rate limit of the business; None: no client pacing."
    )
    max_in_flight: int = Field(default=16, description="Concurrent requests per run.")
    adaptive: bool = Field(default=False, description="Back off on 429 and climb back.")
    timeout_s: float = Field(default=30.0, description="Timeout of one request, in seconds.")
    verify_tls: bool = Field(default=True, description="Verify Kizen's TLS certificate.")

    def get_client_settings(self) -> ClientSettings:
        """The :class:`ClientSettings` for :class:`kizen_sync.engine.runner.SyncRunner`."""
        return ClientSettings(
            base_url=self.base_url,
            business_id=self.business_id,
            user_id=self.user_id,
            api_key=SecretStr(self.api_key),
            requests_per_second=self.requests_per_second,
            max_in_flight=self.max_in_flight,
            adaptive=self.adaptive,
            timeout_s=self.timeout_s,
            verify_tls=self.verify_tls,
        )


class StateStoreResource(dg.ConfigurableResource):
    """kizen-sync's state and audit tables, read by the failed-records monitoring.

    Kept apart from the Kizen resource so that the failures check can run (and be re-run from
    the UI) without Kizen credentials.
    """

    warehouse: WarehouseResource

    @contextmanager
    def open_store(self) -> Iterator[StateStore]:
        """A :class:`StateStore` over a warehouse connection that is closed on exit."""
        with self.warehouse.get_warehouse() as warehouse:
            yield StateStore(warehouse)


@contextmanager
def open_runner(
    project: ProjectConfig,
    warehouse: WarehouseResource,
    kizen: KizenResource,
    log: logging.Logger,
) -> Iterator[SyncRunner]:
    """A :class:`SyncRunner` for ``project`` over the resources' warehouse and Kizen settings."""
    with (
        warehouse.get_warehouse() as wh,
        SyncRunner(
            project, client_settings=kizen.get_client_settings(), warehouse=wh, log=log
        ) as runner,
    ):
        yield runner


def _env_or(value: str | None, env: str) -> Any:
    """The file's value when it has one, else the environment variable at run start."""
    return value if value else dg.EnvVar(env)


def _warehouse_url(project: ProjectConfig, sync_file: Path) -> Any:
    """``dg.EnvVar(VAR)`` when the file says ``url: ${VAR}``, so that a URL carrying a
    password is never shown as a resource value in the UI; the file's value otherwise.
    """
    raw = yaml.safe_load(sync_file.read_text(encoding="utf-8"))
    match = _WHOLE_ENV_REF.match(str(raw.get("warehouse", {}).get("url", "")))
    return dg.EnvVar(match.group(1)) if match else project.warehouse.url


def build_resources(project: ProjectConfig, sync_file: Path) -> dict[str, Any]:
    """The resources of the code location, keyed as the assets and checks ask for them.

    Business and user ids come from the file, else from ``KIZEN_BUSINESS_ID`` /
    ``KIZEN_USER_ID``; the base URL from the file, else ``KIZEN_BASE_URL`` when it is set
    (the same precedence as the CLI).
    """
    kizen = project.kizen
    base_url: Any = kizen.base_url
    if "base_url" not in kizen.model_fields_set and os.environ.get("KIZEN_BASE_URL"):
        base_url = dg.EnvVar("KIZEN_BASE_URL")
    warehouse = WarehouseResource(
        url=_warehouse_url(project, sync_file),
        state_schema=project.warehouse.state_schema,
        table_prefix=project.warehouse.table_prefix,
    )
    return {
        "warehouse": warehouse,
        "kizen": KizenResource(
            base_url=base_url,
            business_id=_env_or(kizen.business_id, "KIZEN_BUSINESS_ID"),
            user_id=_env_or(kizen.user_id, "KIZEN_USER_ID"),
            api_key=dg.EnvVar(kizen.api_key_env),
            requests_per_second=kizen.requests_per_second,
            max_in_flight=kizen.max_in_flight,
            adaptive=kizen.adaptive,
            timeout_s=kizen.timeout_s,
            verify_tls=kizen.verify_tls,
        ),
        "state_store": StateStoreResource(warehouse=warehouse),
    }
