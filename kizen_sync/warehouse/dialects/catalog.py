"""Reflection through ``information_schema``, for warehouses whose SQLAlchemy dialect reflects
another way (duckdb-engine through PostgreSQL's catalog, which DuckDB only partly emulates;
snowflake-sqlalchemy through ``SHOW`` commands): one query per question, the same in both.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import Column, Connection, MetaData, Table, text
from sqlalchemy.types import NullType, TypeEngine

from kizen_sync.warehouse.dialects.base import Dialect

__all__ = ["InformationSchemaDialect"]


class InformationSchemaDialect(Dialect):
    """A dialect that answers the source checks from ``information_schema``.

    Subclasses say which catalog the views cover (:attr:`catalog_clause`), how names are
    folded (:meth:`fold`, :meth:`unfold`) and what a ``data_type`` is (:meth:`column_type`).
    """

    #: SQL narrowing the views to the connection's database (DuckDB lists every attached one).
    catalog_clause: ClassVar[str] = ""

    def fold(self, name: str | None) -> str | None:
        """A name as the catalog stores it."""
        return name

    def unfold(self, name: str) -> str:
        """A catalog name as SQLAlchemy spells it."""
        return name

    def column_type(self, data_type: str, scale: int | None) -> TypeEngine[Any]:
        """The type of an ``information_schema.columns`` row (fingerprint format)."""
        return NullType()

    def _where(self, *conditions: str) -> str:
        parts = [c for c in (self.catalog_clause, *conditions) if c]
        return " AND ".join(parts)

    def schema_exists(self, conn: Connection, schema: str) -> bool:
        """A schema of the current database (``schemata`` names its catalog ``catalog_name``,
        so the catalog clause is rewritten rather than added by :meth:`_where`).
        """
        catalog = self.catalog_clause.replace("table_catalog", "catalog_name")
        where = " AND ".join(c for c in (catalog, "schema_name = :schema") if c)
        found = conn.execute(
            text(f"SELECT count(*) FROM information_schema.schemata WHERE {where}"),
            {"schema": self.fold(schema)},
        ).scalar_one()
        return bool(found)

    def relation_names(self, conn: Connection, schema: str | None) -> list[str]:
        """Tables and views of the schema (the connection's by default)."""
        where = self._where("table_schema = coalesce(:schema, current_schema())")
        rows = conn.execute(
            text(f"SELECT table_name FROM information_schema.tables WHERE {where}"),
            {"schema": self.fold(schema)},
        ).scalars()
        return sorted(self.unfold(r) for r in rows)

    def reflect_table(self, conn: Connection, name: str, schema: str | None) -> Table:
        """Columns and their types from ``information_schema.columns``."""
        where = self._where(
            "table_schema = coalesce(:schema, current_schema())", "table_name = :name"
        )
        rows = conn.execute(
            text(
                "SELECT column_name, data_type, numeric_scale FROM information_schema.columns "
                f"WHERE {where} ORDER BY ordinal_position"
            ),
            {"schema": self.fold(schema), "name": self.fold(name)},
        ).all()
        columns = [Column(self.unfold(c), self.column_type(t, s)) for c, t, s in rows]
        return Table(name, MetaData(), *columns, schema=schema)

    def has_table(self, conn: Connection, name: str, schema: str | None) -> bool:
        """A table of the schema (``information_schema``)."""
        return name in self.relation_names(conn, schema)
