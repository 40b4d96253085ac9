"""PostgreSQL databases and schemas a test run owns, and the sweep of what killed runs left.

Every database, schema or role the suite (or ``python -m bench``) creates carries the id of the
process that owns it: ``t_<pid>_<hex>`` schemas in the ``test`` database,
``kizen_test_<pid>_<purpose>`` and ``kizen_bench_<pid>`` databases, ``kizen_test_<pid>_role_<hex>``
login roles (a user with fewer rights, e.g. no CREATE). Fixtures drop their own
objects in finalizers, which run after a failure too; a run killed outright (a CI time limit,
``kill -9``) cannot, so :func:`sweep_stale` drops every owned object whose process is gone.
Objects of a live process (another worktree's ``make test`` on the same server) are left
alone, whatever their age.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

__all__ = [
    "PG_URL",
    "database_name",
    "drop_database",
    "owned_database",
    "owned_role",
    "owned_schema",
    "schema_name",
    "sweep_stale",
    "url_of",
]

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

#: Owned names: the owner's pid is the first number after the prefix.
_DATABASE = re.compile(r"^kizen_(?:test|bench)_(\d+)(?:_[a-z0-9_]+)?$")
_SCHEMA = re.compile(r"^t_(\d+)_[0-9a-f]+$")
_ROLE = re.compile(r"^kizen_test_(\d+)_role_[0-9a-f]+$")


def schema_name() -> str:
    """A fresh schema name owned by this process."""
    return f"t_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def database_name(purpose: str) -> str:
    """A fresh database name owned by this process (``purpose``: lower-case letters, digits)."""
    assert re.fullmatch(r"[a-z0-9]+", purpose), purpose
    return f"kizen_test_{os.getpid()}_{purpose}_{uuid.uuid4().hex[:6]}"


def url_of(database: str, driver: str = "psycopg") -> str:
    """The URL of ``database`` on the test server."""
    return f"postgresql+{driver}://postgres@127.0.0.1:5432/{database}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _admin(url: str = PG_URL) -> Iterator[Connection]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def drop_database(name: str, url: str = PG_URL) -> None:
    """Drop ``name`` (closing its sessions) if it exists."""
    assert _DATABASE.match(name), name
    with _admin(url) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def owned_database(purpose: str, url: str = PG_URL) -> Iterator[str]:
    """Create a database owned by this process; drop it when the block exits, however."""
    name = database_name(purpose)
    with _admin(url) as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        drop_database(name, url)


@contextmanager
def owned_schema(url: str = PG_URL) -> Iterator[str]:
    """Create a schema owned by this process; drop it with its content when the block exits."""
    name = schema_name()
    with _admin(url) as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield name
    finally:
        with _admin(url) as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def _drop_role(conn: Connection, name: str) -> None:
    assert _ROLE.match(name), name
    if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).first():
        conn.execute(text(f'DROP OWNED BY "{name}"'))
        conn.execute(text(f'DROP ROLE "{name}"'))


@contextmanager
def owned_role(url: str = PG_URL) -> Iterator[str]:
    """A login role owned by this process, with no rights of its own; dropped with what it
    was granted (``DROP OWNED``) when the block exits, however.
    """
    name = f"kizen_test_{os.getpid()}_role_{uuid.uuid4().hex[:8]}"
    with _admin(url) as conn:
        conn.execute(text(f'CREATE ROLE "{name}" LOGIN'))
    try:
        yield name
    finally:
        with _admin(url) as conn:
            _drop_role(conn, name)


def sweep_stale(url: str = PG_URL) -> list[str]:
    """Drop every owned database, schema and role whose owning process no longer runs."""
    dropped = []
    with _admin(url) as conn:
        databases = conn.execute(text("SELECT datname FROM pg_database")).scalars().all()
        schemas = conn.execute(text("SELECT nspname FROM pg_namespace")).scalars().all()
        roles = conn.execute(text("SELECT rolname FROM pg_roles")).scalars().all()
        for name in schemas:
            match = _SCHEMA.match(name)
            if match and not _alive(int(match.group(1))):
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
                dropped.append(name)
        for name in roles:
            match = _ROLE.match(name)
            if match and not _alive(int(match.group(1))):
                _drop_role(conn, name)
                dropped.append(name)
    for name in databases:
        match = _DATABASE.match(name)
        if match and not _alive(int(match.group(1))):
            drop_database(name, url)
            dropped.append(name)
    return dropped
