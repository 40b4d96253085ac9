"""One module per supported warehouse; :func:`dialect_for` picks the one an engine needs."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from kizen_sync.errors import SourceError
from kizen_sync.warehouse.dialects.base import Dialect
from kizen_sync.warehouse.dialects.bigquery import BigQueryDialect
from kizen_sync.warehouse.dialects.duckdb import DuckDBDialect
from kizen_sync.warehouse.dialects.postgresql import PostgresDialect
from kizen_sync.warehouse.dialects.redshift import RedshiftDialect
from kizen_sync.warehouse.dialects.snowflake import SnowflakeDialect
from kizen_sync.warehouse.dialects.sqlite import SqliteDialect

__all__ = ["DIALECTS", "Dialect", "dialect_for", "supported_names"]

#: Every supported warehouse by SQLAlchemy dialect name.
DIALECTS: dict[str, type[Dialect]] = {
    d.name: d
    for d in (
        BigQueryDialect,
        DuckDBDialect,
        PostgresDialect,
        RedshiftDialect,
        SnowflakeDialect,
        SqliteDialect,
    )
}


def supported_names() -> list[str]:
    """The SQLAlchemy dialect names kizen-sync supports, sorted."""
    return sorted(DIALECTS)


def dialect_for(engine: Engine) -> Dialect:
    """The dialect of ``engine``.

    Raises:
        SourceError: kizen-sync does not support this warehouse (naming it and the list).
    """
    name = engine.dialect.name
    cls = DIALECTS.get(name)
    if cls is None:
        raise SourceError(
            f"warehouse dialect {name!r} is not supported (supported: "
            f"{', '.join(supported_names())})",
            dialect=name,
        )
    return cls(engine)
