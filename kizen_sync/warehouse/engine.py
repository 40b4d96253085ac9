"""The warehouse connection: engine ownership, its dialect, safe error messages.

One :class:`Warehouse` per sync file holds the SQLAlchemy engine for both the source rows and
kizen-sync's own tables. Everything that differs between warehouses is asked of
:attr:`Warehouse.sql_dialect` (:mod:`kizen_sync.warehouse.dialects`), so an unsupported
warehouse is refused here, before any SQL is built for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from kizen_sync.config import IDENTIFIER_RE, WarehouseConfig
from kizen_sync.errors import SourceError, StateStoreError
from kizen_sync.warehouse.dialects import Dialect, dialect_for

__all__ = ["Warehouse"]

_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$|^$")
_READY = "kizen_sync_ready"


class Warehouse:
    """Owns the SQLAlchemy engine of one warehouse and prepares its connections.

    Args:
        url_or_engine: a SQLAlchemy URL, or an engine the caller keeps owning.
        state_schema: schema for the state/audit tables (default: the connection's).
        table_prefix: prefix of the state/audit tables.

    Raises:
        SourceError: the URL cannot be opened, or names a warehouse kizen-sync does not
            support.
        StateStoreError: ``state_schema`` or ``table_prefix`` is not a plain identifier, or
            the warehouse has no schemas.
    """

    def __init__(
        self,
        url_or_engine: str | URL | Engine,
        *,
        state_schema: str | None = None,
        table_prefix: str = "kizen_sync_",
        state: Warehouse | None = None,
        scratch_schema: str | None = None,
    ) -> None:
        if state_schema is not None and not IDENTIFIER_RE.match(state_schema):
            raise StateStoreError(f"state schema {state_schema!r} is not a plain SQL identifier")
        if not _PREFIX_RE.match(table_prefix):
            raise StateStoreError(f"table prefix {table_prefix!r} must be letters, digits and _")
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
            self._owns_engine = False
        else:
            try:
                self.engine = create_engine(url_or_engine)
            except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
                raise SourceError(f"cannot open the warehouse: {type(exc).__name__}") from None
            self._owns_engine = True
        self.sql_dialect: Dialect = dialect_for(self.engine)
        if state_schema is not None and not self.sql_dialect.has_schemas:
            raise StateStoreError(
                f"{self.sql_dialect.label} keeps state in the main database: "
                "leave state_schema unset"
            )
        self.state_schema = state_schema
        self.table_prefix = table_prefix
        #: Where the state tables live when not here (``warehouse.state.url``).
        self.state = state
        #: Schema of this warehouse for the fingerprint mirror of a separate state database.
        self.scratch_schema = scratch_schema
        event.listen(self.engine, "connect", self._prepare)
        event.listen(self.engine, "checkout", self._prepare_on_checkout)

    @classmethod
    def from_config(cls, config: WarehouseConfig) -> Warehouse:
        """A warehouse from the ``warehouse:`` section of a sync file (and its separate state
        database when ``warehouse.state`` names one).
        """
        if config.state is None:
            return cls(
                config.url, state_schema=config.state_schema, table_prefix=config.table_prefix
            )
        state = cls(
            config.state.url, state_schema=config.state_schema, table_prefix=config.table_prefix
        )
        return cls(
            config.url,
            table_prefix=config.table_prefix,
            state=state,
            scratch_schema=config.state.scratch_schema,
        )

    @property
    def state_warehouse(self) -> Warehouse:
        """Where kizen-sync's own tables live: this warehouse unless ``state`` is set."""
        return self.state if self.state is not None else self

    @property
    def dialect(self) -> str:
        """SQLAlchemy dialect name (``postgresql``, ``sqlite``, ...)."""
        return self.engine.dialect.name

    def describe(self) -> str:
        """The URL with its password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def safe_message(self, error: BaseException) -> str:
        """The database's message for ``error``, without the statement or any password."""
        original = getattr(error, "orig", None)
        message = str(original if original is not None else error).strip()
        password = self.engine.url.password
        if password:
            message = message.replace(str(password), "***")
        return message

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection; database errors become :class:`SourceError` with a safe message."""
        try:
            with self.engine.connect() as connection:
                yield connection
        except sa_exc.DBAPIError as exc:
            raise SourceError(
                f"warehouse {self.describe()}: {self.safe_message(exc)}", warehouse=self.describe()
            ) from None

    def dispose(self) -> None:
        """Close pooled connections (only when this object created the engine)."""
        if self._owns_engine:
            self.engine.dispose()
        if self.state is not None:
            self.state.dispose()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    # Connections of an engine handed in by the caller may predate our listeners, so the
    # checkout hook prepares whatever the connect hook has not seen.
    def _prepare_on_checkout(self, dbapi_conn: Any, record: Any, proxy: Any) -> None:
        self._prepare(dbapi_conn, record)

    def _prepare(self, dbapi_conn: Any, record: Any) -> None:
        if record.info.get(_READY):
            return
        self.sql_dialect.prepare_connection(dbapi_conn)
        record.info[_READY] = True
