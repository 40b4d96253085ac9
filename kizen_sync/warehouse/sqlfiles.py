"""Locate and render the SQL files shipped with kizen-sync.

The DDL of the state and audit tables lives in plain ``.sql`` files so that a DBA can read and
review exactly what the connector creates. In a source checkout the files are in
``<repo>/sql``; in an installed wheel hatch copies the same directory to ``kizen_sync/_sql``.
Both places are looked up here so that no caller needs to know how it was installed.

Templates carry ``{schema}`` and ``{prefix}`` placeholders. Identifiers cannot be bound as
parameters, so they are substituted as text, but only after checking that each one is a
plain identifier: a hostile prefix can never turn a ``CREATE TABLE`` into something else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

__all__ = ["SqlFile", "migrations", "render", "split_statements", "sql_dir"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$|^$")
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@cache
def sql_dir() -> Path:
    """The directory holding ``sqlite/``, ``postgresql/`` and the demo seed.

    Raises:
        FileNotFoundError: neither the wheel copy nor the checkout copy exists.
    """
    package = Path(__file__).resolve().parent.parent  # kizen_sync/
    for candidate in (package / "_sql", package.parent / "sql"):
        if (candidate / "sqlite").is_dir():
            return candidate
    raise FileNotFoundError(f"kizen-sync SQL files not found next to {package}")


class SqlFile:
    """One numbered migration file of a dialect (``001_state_audit.sql``)."""

    def __init__(self, path: Path) -> None:
        match = _MIGRATION.match(path.name)
        if match is None:
            raise ValueError(f"{path.name} is not a migration file name (NNN_name.sql)")
        self.path = path
        self.version = int(match.group(1))

    @property
    def name(self) -> str:
        """File name, e.g. ``001_state_audit.sql``."""
        return self.path.name

    def statements(
        self, *, schema: str | None, prefix: str, qualify: Callable[[str | None], str] | None = None
    ) -> list[str]:
        """The file's statements with placeholders substituted (see :func:`render`)."""
        text = self.path.read_text(encoding="utf-8")
        return split_statements(render(text, schema, prefix, qualify))


def migrations(dialect: str) -> list[SqlFile]:
    """The numbered migration files for ``dialect``, in the order they must run.

    Raises:
        FileNotFoundError: kizen-sync ships no DDL for this dialect.
    """
    folder = sql_dir() / dialect
    if not folder.is_dir():
        raise FileNotFoundError(f"no DDL for dialect {dialect!r} in {sql_dir()}")
    files = [SqlFile(p) for p in sorted(folder.iterdir()) if _MIGRATION.match(p.name)]
    versions = [f.version for f in files]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migration files share a number in {folder}")
    return files


def render(
    text: str,
    schema: str | None,
    prefix: str,
    qualify: Callable[[str | None], str] | None = None,
) -> str:
    """Substitute ``{schema}`` (``"name".`` or nothing, or what ``qualify`` makes of the
    schema: each warehouse quotes as its SQLAlchemy dialect does) and ``{prefix}`` in a SQL
    template.

    Raises:
        ValueError: ``schema`` or ``prefix`` is not a plain identifier.
    """
    if schema is not None and not _IDENTIFIER.match(schema):
        raise ValueError(f"schema {schema!r} is not a plain SQL identifier")
    if not _PREFIX.match(prefix):
        raise ValueError(f"table prefix {prefix!r} must be letters, digits and _")
    default = f'"{schema}".' if schema else ""
    qualifier = qualify(schema) if qualify is not None else default
    return text.replace("{schema}", qualifier).replace("{prefix}", prefix)


def split_statements(text: str) -> list[str]:
    """Split a SQL file into statements at semicolons that end a line.

    Only our own files are split, so the simple rule suffices: a statement ends with ``;`` at
    the end of a line, and ``--`` comment lines are dropped.
    """
    statements: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().removesuffix(";").strip()
            if statement:
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements
