"""Resources: the warehouse, the Kizen connection and the state/audit store.

Each resource only holds configuration (shown on the UI's resource page) and hands out the
plain :mod:`kizen_sync` object, the way ``dagster-fivetran``'s workspace hands out its client:
the library stays free of Dagster and the same objects serve the CLI. Secrets never appear as
values: the API key is always a :class:`dagster.EnvVar`, resolved when a run starts, and so is
a warehouse URL that the sync file takes from the environment.
"""

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from kizen_sync.client import ClientSettings
from kizen_sync.config import KizenConfig, ProjectConfig, StateDatabaseConfig, WarehouseConfig
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
    state_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a separate state database (file key warehouse.state.url); "
        "None: the state tables live in the warehouse.",
    )
    scratch_schema: str | None = Field(
        default=None, description="Schema of the warehouse for the fingerprint mirror."
    )

    def get_warehouse(self) -> Warehouse:
        """A new :class:`Warehouse` owning its engine(s); use it in a ``with`` block to close it.

        Built by the library from the same section the CLI reads, so a separate state database
        (``warehouse.state``) works in Dagster exactly as it does in the CLI.
        """
        state = (
            None
            if self.state_url is None
            else StateDatabaseConfig(url=self.state_url, scratch_schema=self.scratch_schema)
        )
        return Warehouse.from_config(
            WarehouseConfig(
                url=self.url,
                state_schema=self.state_schema,
                table_prefix=self.table_prefix,
                state=state,
            )
        )


class KizenResource(dg.ConfigurableResource):
    """The Kizen business the syncs write to.

    ``connection`` is the sync file's ``kizen:`` section as written (no secret ever lives
    there); the key is an environment variable resolved when a run starts. Everything else
    goes through the one settings model (:meth:`kizen_sync.config.KizenConfig.client_settings`):
    what the file leaves unset is read from ``KIZEN_*`` variables in the run's process, then
    the defaults, exactly as the CLI does.
    """

    api_key: str = Field(description="X-API-KEY; always given as an environment variable.")
    connection: dict[str, Any] = Field(
        default_factory=dict,
        description="The sync file's kizen section (base_url, business_id, user_id, pacing...); "
        "unset values come from KIZEN_* environment variables at run start.",
    )

    def get_client_settings(self) -> ClientSettings:
        """The :class:`ClientSettings` for :class:`kizen_sync.engine.runner.SyncRunner`."""
        return KizenConfig.model_validate(self.connection).client_settings(api_key=self.api_key)


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
    config_path: str | None = None,
) -> Iterator[SyncRunner]:
    """A :class:`SyncRunner` for ``project`` over the resources' warehouse and Kizen settings
    (``config_path``: the sync file, named in the commands messages suggest).
    """
    with (
        warehouse.get_warehouse() as wh,
        SyncRunner(
            project,
            client_settings=kizen.get_client_settings(),
            warehouse=wh,
            log=log,
            config_path=config_path,
        ) as runner,
    ):
        yield runner


def _shown_url(config: WarehouseConfig | StateDatabaseConfig) -> Any:
    """``dg.EnvVar(VAR)`` when the file says ``url: ${VAR}``, so that a URL carrying a
    password is never shown as a resource value in the UI; the file's value otherwise.
    """
    match = _WHOLE_ENV_REF.match(config.url_as_written)
    return dg.EnvVar(match.group(1)) if match else config.url


def build_resources(project: ProjectConfig, sync_file: Path) -> dict[str, Any]:
    """The resources of the code location, keyed as the assets and checks ask for them.

    The Kizen connection is the file's ``kizen`` section; what it leaves unset comes from the
    environment when a run starts (the same precedence as the CLI).
    """
    kizen = project.kizen
    section = project.warehouse
    warehouse = WarehouseResource(
        url=_shown_url(section),
        state_schema=section.state_schema,
        table_prefix=section.table_prefix,
        state_url=None if section.state is None else _shown_url(section.state),
        scratch_schema=None if section.state is None else section.state.scratch_schema,
    )
    return {
        "warehouse": warehouse,
        "kizen": KizenResource(
            api_key=dg.EnvVar(kizen.api_key_env),
            connection=kizen.model_dump(mode="json", exclude_unset=True),
        ),
        "state_store": StateStoreResource(warehouse=warehouse),
    }
