"""Sync definitions: one YAML file -> validated models.

A file declares the warehouse, the Kizen connection and any number of syncs. Loading checks
the file against these models and reports *every* problem at once, each with the dotted key
that is wrong (``syncs[1].fields[3].field: ...``). :func:`validate_against_schema` then checks
the mappings against Kizen's live schema (fields exist, types fit, option labels exist).

Secrets never live in the file: ``kizen.api_key_env`` names the environment variable that
holds the API key. ``${VAR}`` and ``${VAR:-default}`` in string values are expanded from the
environment, so warehouse URLs can carry credentials without committing them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from kizen_sync.errors import ConfigError, ConfigProblem
from kizen_sync.schema import OPTION_TYPES, FieldSchema, ObjectSchema
from kizen_sync.settings import ENV_PREFIX, ClientSettings, ConnectionOptions

__all__ = [
    "EXECUTOR_TYPES",
    "DeleteConfig",
    "ExecutorConfig",
    "FieldMapping",
    "IdentityConfig",
    "KizenConfig",
    "LeaseConfig",
    "PartitionConfig",
    "ProjectConfig",
    "SourceConfig",
    "StateDatabaseConfig",
    "SyncConfig",
    "VerifyConfig",
    "WarehouseConfig",
    "load_config",
    "parse_config",
    "validate_against_schema",
]

#: Identifiers (table, column, schema, prefix) accepted from users before reflection checks them.
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as 'Europe/Paris')"
        ) from None
    return value


def _identifier(value: str, what: str) -> str:
    if not IDENTIFIER_RE.match(value):
        raise ValueError(f"{what} {value!r} is not a plain SQL identifier (letters, digits, _)")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeaseConfig(_Model):
    """The run lease: one run per sync at a time, held in the warehouse."""

    wait_s: float = Field(
        default=0.0,
        ge=0,
        description="How long a run waits for another run of the same sync to finish before "
        "it stops with exit status 3 (the CLI's --wait overrides it).",
    )
    ttl_s: float = Field(
        default=60.0,
        ge=1,
        description="A lease not renewed for this long belongs to a dead run and may be "
        "taken over (warehouses without advisory locks); renewed every ttl_s / 4.",
    )


#: The SQLAlchemy dialect names of the warehouses kizen-sync supports: one module each in
#: ``kizen_sync/warehouse/dialects/`` (a test keeps the two lists equal). Kept here, as plain
#: names, so that validating a sync file imports no database code at all.
WAREHOUSE_DIALECTS = ("bigquery", "duckdb", "postgresql", "redshift", "snowflake", "sqlite")
_URL_RE = re.compile(r"^(?P<backend>[A-Za-z][A-Za-z0-9_.\-]*)(\+[A-Za-z0-9_.\-]+)?://")


def _warehouse_url(url: str) -> str:
    """``url`` when it names a warehouse kizen-sync supports; opens no connection and imports
    no driver. The message names the dialect and the supported list, never the URL (it may
    hold a password).
    """
    match = _URL_RE.match(url)
    if match is None:
        raise ValueError("not a SQLAlchemy URL (dialect+driver://...)")
    backend = match.group("backend").lower()
    if backend not in WAREHOUSE_DIALECTS:
        raise ValueError(
            f"warehouse dialect {backend!r} is not supported "
            f"(supported: {', '.join(WAREHOUSE_DIALECTS)})"
        )
    return url


class _WrittenUrl(_Model):
    """A model with a ``url`` that also remembers how the file spelled it."""

    url: str
    _url_as_written: str | None = PrivateAttr(default=None)

    @property
    def url_as_written(self) -> str:
        """The URL as the file spells it, before ``${VAR}`` expansion: safe to show, since a
        password in the URL normally comes from the environment.
        """
        return self._url_as_written if self._url_as_written is not None else self.url


class StateDatabaseConfig(_WrittenUrl):
    """A database of its own for the state, audit, runs and lease tables (``warehouse.state``).

    The diff still runs in the source warehouse: each diff first loads the sync's keys and
    fingerprints into ``{prefix}state_mirror`` there (in ``scratch_schema``), so the source
    warehouse needs one writable schema, and each diff copies the sync's state keys once.
    """

    url: str = Field(description="SQLAlchemy URL of the database that keeps the state tables.")
    scratch_schema: str | None = Field(
        default=None,
        description="Schema of the source warehouse for the fingerprint mirror; default: the "
        "source URL's.",
    )

    @field_validator("url")
    @classmethod
    def _url_ok(cls, v: str) -> str:
        return _warehouse_url(v)

    @field_validator("scratch_schema")
    @classmethod
    def _schema_ok(cls, v: str | None) -> str | None:
        return None if v is None else _identifier(v, "schema")


class WarehouseConfig(_WrittenUrl):
    """Where the source rows live, and where kizen-sync keeps its state and audit tables."""

    url: str = Field(
        description="SQLAlchemy URL of a supported warehouse, e.g. sqlite:///warehouse.db, "
        "postgresql+psycopg://..., duckdb:///file.duckdb, snowflake://..., bigquery://..., "
        "redshift+redshift_connector://..."
    )
    state_schema: str | None = Field(
        default=None, description="Schema for state/audit tables (PostgreSQL); default: the URL's."
    )
    table_prefix: str = Field(default="kizen_sync_", description="Prefix of state/audit tables.")
    lease: LeaseConfig = Field(default_factory=LeaseConfig)
    state: StateDatabaseConfig | None = Field(
        default=None,
        description="Keep state, audit, runs and leases in another database (state_schema "
        "then names a schema there); default: in the source warehouse.",
    )

    @field_validator("url")
    @classmethod
    def _url_ok(cls, v: str) -> str:
        return _warehouse_url(v)

    @field_validator("state_schema")
    @classmethod
    def _schema_ok(cls, v: str | None) -> str | None:
        return None if v is None else _identifier(v, "schema")

    @field_validator("table_prefix")
    @classmethod
    def _prefix_ok(cls, v: str) -> str:
        if v and not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,30}$", v):
            raise ValueError(f"table prefix {v!r} must be letters, digits and _")
        return v


class KizenConfig(ConnectionOptions):
    """How to reach Kizen: the sync file's ``kizen:`` section.

    Any field of the connection (:class:`~kizen_sync.settings.ConnectionOptions`) may be
    set here; what the file leaves unset comes from the ``KIZEN_*`` environment, then the
    defaults (:meth:`client_settings`). The API key itself comes from the environment only.
    """

    api_key_env: str = Field(default="KIZEN_API_KEY", description="Env var holding the API key.")
    audit_hash_key_env: str = Field(
        default="KIZEN_SYNC_AUDIT_KEY",
        description="Env var with the HMAC key for sensitive fields.",
    )
    pool: str | None = Field(
        default=None,
        description="Dagster pool of the steps that write to this business; default "
        "kizen_api/<business id>.",
    )

    @field_validator("pool")
    @classmethod
    def _pool_ok(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,127}$", v):
            raise ValueError(
                f"pool {v!r} must be letters, digits and _ . / : - (at most 128 characters)"
            )
        return v

    @field_validator("business_id", "user_id")
    @classmethod
    def _uuid_ok(cls, v: str | None) -> str | None:
        if v is not None and not UUID_RE.match(v):
            raise ValueError(f"{v!r} is not a UUID")
        return v

    def resolved_business_id(self) -> str | None:
        """Business id from the file, else from the environment."""
        return self.business_id or os.environ.get(f"{ENV_PREFIX}BUSINESS_ID") or None

    def resolved_user_id(self) -> str | None:
        """User id from the file, else from the environment."""
        return self.user_id or os.environ.get(f"{ENV_PREFIX}USER_ID") or None

    def client_settings(self, **overrides: Any) -> ClientSettings:
        """The client settings: ``overrides``, then this file section, then ``KIZEN_*``
        variables, then the defaults; the key from the variable named by ``api_key_env``.

        Raises:
            ConfigError: a credential is missing (naming the variable to set) or a value
                from the environment is invalid.
        """
        values = self.model_dump(exclude_unset=True, exclude={"api_key_env", "audit_hash_key_env"})
        values.update({k: v for k, v in overrides.items() if v is not None})
        problems: list[ConfigProblem] = []
        if "api_key" not in values:
            key = os.environ.get(self.api_key_env)
            if key:
                values["api_key"] = key
            else:
                # Named explicitly: a custom variable must not fall back to KIZEN_API_KEY.
                problems.append(
                    ConfigProblem(
                        "kizen.api_key_env",
                        f"environment variable {self.api_key_env} is not set; "
                        "it must hold the Kizen API key",
                    )
                )
        for name in ("business_id", "user_id"):
            var = f"{ENV_PREFIX}{name.upper()}"
            if not values.get(name) and not os.environ.get(var):
                problems.append(
                    ConfigProblem(f"kizen.{name}", f"not set in the file nor in ${var}")
                )
        if problems:
            raise ConfigError(problems)
        try:
            return ClientSettings(**values)
        except ValidationError as exc:
            raise ConfigError(
                [
                    ConfigProblem(f"kizen.{_loc(e['loc'])}", e["msg"].removeprefix("Value error, "))
                    for e in exc.errors()
                ]
            ) from None


class SourceConfig(_Model):
    """A table or a SQL query, and the columns that identify and slice its rows."""

    table: str | None = None
    query: str | None = None
    primary_key: list[str] = Field(min_length=1)
    cursor_column: str | None = Field(
        default=None, description="Timestamp/date column for time partitions."
    )
    soft_delete_column: str | None = Field(
        default=None, description="Truthy means: archive this record."
    )
    asset_key: str | None = Field(
        default=None,
        description="Dagster asset key of the source, '/'-separated (default: the table's "
        "name, 'schema/table' for a qualified one; none for a query). Dagster only.",
    )
    dbt_model: str | None = Field(
        default=None,
        description="Name of the dbt model that builds the source; with a dbt manifest the "
        "key comes from it (dagster-dbt's naming). Dagster only.",
    )

    dataframe: str | None = Field(
        default=None,
        description="Key ('/'-separated) of a Dagster asset that returns a pandas DataFrame: "
        "each run stages it into 'table' (replaced) and diffs it there like any table.",
    )

    @field_validator("asset_key", "dataframe")
    @classmethod
    def _asset_key_ok(cls, v: str | None) -> str | None:
        if v is not None:
            parts = v.split("/")
            if not all(re.match(r"^[A-Za-z0-9_-]+$", p) for p in parts):
                raise ValueError(
                    f"asset key {v!r} must be '/'-separated parts of letters, digits, _ and -"
                )
        return v

    @field_validator("dbt_model")
    @classmethod
    def _dbt_model_ok(cls, v: str | None) -> str | None:
        return None if v is None else _identifier(v, "dbt model")

    @field_validator("table")
    @classmethod
    def _table_ok(cls, v: str | None) -> str | None:
        if v is not None:
            parts = v.split(".")
            if len(parts) > 2:
                raise ValueError(f"table {v!r} must be 'name' or 'schema.name'")
            for part in parts:
                _identifier(part, "table")
        return v

    @field_validator("primary_key")
    @classmethod
    def _key_ok(cls, v: list[str]) -> list[str]:
        for col in v:
            _identifier(col, "column")
        if len(set(v)) != len(v):
            raise ValueError("primary_key lists a column twice")
        return v

    @field_validator("cursor_column", "soft_delete_column")
    @classmethod
    def _column_ok(cls, v: str | None) -> str | None:
        return None if v is None else _identifier(v, "column")

    @model_validator(mode="after")
    def _one_source(self) -> SourceConfig:
        if self.dataframe is not None and self.table is None:
            raise ValueError(
                "a 'dataframe' source needs 'table': the warehouse table it is staged into"
            )
        if self.dataframe is not None and (self.asset_key or self.dbt_model):
            raise ValueError("'dataframe' names the source asset: drop asset_key / dbt_model")
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        if self.query is not None and not self.query.strip().rstrip(";").strip():
            raise ValueError("'query' is empty")
        if self.soft_delete_column is not None and self.soft_delete_column in self.primary_key:
            raise ValueError("soft_delete_column cannot be part of the primary key")
        return self


class IdentityConfig(_Model):
    """How a source row finds its Kizen record.

    Either ``record_id_column`` holds the Kizen record UUID, or ``match_on`` (``name``, or
    ``email`` for contacts) is resolved once by lookup/upsert and remembered in sync_state.
    """

    record_id_column: str | None = None
    match_on: Literal["name", "email"] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> IdentityConfig:
        if self.record_id_column is None and self.match_on is None:
            raise ValueError("give 'record_id_column' or 'match_on'")
        if self.record_id_column is not None:
            _identifier(self.record_id_column, "column")
        return self


class DeleteConfig(_Model):
    """What happens to Kizen records whose source rows are gone."""

    archive: bool = Field(
        default=True, description="DELETE (archive) records whose rows were deleted."
    )
    max_archive_fraction: float = Field(
        default=0.05, ge=0, le=1, description="Stop before any write if a run would archive more."
    )


class PartitionConfig(_Model):
    """How Dagster slices this sync for backfills."""

    granularity: Literal["hourly", "daily", "weekly", "monthly"] = "daily"
    start: str | None = Field(
        default=None,
        description="Earliest partition offered (ISO date); default: the first window that "
        "holds rows, as recorded by the sync's runs.",
    )
    timezone: str = "UTC"
    buckets: int = Field(
        default=8, ge=1, le=1024, description="Hash buckets when there is no cursor."
    )

    @field_validator("timezone")
    @classmethod
    def _zone_ok(cls, v: str) -> str:
        return _zone(v)

    @field_validator("start")
    @classmethod
    def _start_ok(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                date.fromisoformat(v)
            except ValueError:
                raise ValueError(f"start {v!r} is not an ISO date (YYYY-MM-DD)") from None
        return v


class FieldMapping(_Model):
    """One source column -> one Kizen field (by API name or field UUID)."""

    column: str
    field: str = Field(description="Kizen field API name or field UUID.")
    format: Literal["auto", "list", "delimited", "json"] = Field(
        default="auto", description="Multi-valued fields: how the column holds several values."
    )
    delimiter: str = ","
    multi_mode: Literal["managed", "mirror"] = Field(
        default="managed",
        description="managed: diff against what we last synced (keeps values people added in "
        "Kizen); mirror: make Kizen hold exactly the source values.",
    )
    null: Literal["clear", "leave"] = Field(default="clear", description="What a NULL means.")
    match: Literal["label", "id"] = Field(
        default="label", description="Options given by label or id."
    )
    timezone: str = Field(default="UTC", description="Zone of naive datetimes in this column.")
    sensitive: bool = Field(default=False, description="Audit stores only a keyed hash of values.")

    @field_validator("column")
    @classmethod
    def _column_ok(cls, v: str) -> str:
        return _identifier(v, "column")

    @field_validator("timezone")
    @classmethod
    def _zone_ok(cls, v: str) -> str:
        return _zone(v)

    @field_validator("delimiter")
    @classmethod
    def _delimiter_ok(cls, v: str) -> str:
        if not v:
            raise ValueError("delimiter cannot be empty")
        return v


class VerifyConfig(_Model):
    """Read-after-write verification: which written records are read back and compared.

    Written in the sync file as ``verify: all``, ``verify: none``, ``verify: sample`` (5 %)
    or ``verify: {sample: 0.2}``. Without it, a sync's first run against an account
    verifies a sample and later runs verify nothing.
    """

    mode: Literal["none", "sample", "all"]
    rate: float = Field(default=0.05, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _spelling(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"mode": value}
        if isinstance(value, Mapping) and set(value) == {"sample"}:
            return {"mode": "sample", "rate": value["sample"]}
        return value

    @property
    def effective_rate(self) -> float:
        """Fraction of written records to verify."""
        return {"none": 0.0, "all": 1.0}.get(self.mode, self.rate)


class SyncConfig(_Model):
    """One warehouse source -> one Kizen object."""

    name: str = Field(description="Lowercase identifier; also the Dagster asset name.")
    object: str = Field(description="Kizen object API name (contacts: client_client) or UUID.")
    description: str | None = None
    group: str = "kizen"
    owners: list[str] = Field(default_factory=list)
    schedule: str | None = Field(
        default=None,
        description="Cron of the scheduled incremental sync; none: no schedule (run on demand).",
    )
    source: SourceConfig
    identity: IdentityConfig
    mode: Literal["update", "upsert"] = "update"
    delete: DeleteConfig = Field(default_factory=DeleteConfig)
    fields: list[FieldMapping] = Field(min_length=1)
    partitions: PartitionConfig = Field(default_factory=PartitionConfig)
    max_reject_rate: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Stop before any write if more planned records fail mapping.",
    )
    failure_threshold: float = Field(
        default=0.0, ge=0, le=1, description="The run fails when the failed fraction exceeds this."
    )
    verify: VerifyConfig | None = Field(
        default=None,
        description="Re-read written records and compare (all, sample, {sample: rate}, none); "
        "default: a sample on the first run against an account.",
    )
    create_missing_tags: bool = Field(
        default=False,
        description="Create dynamic tags that do not exist yet (fields mapped by label) instead "
        "of failing their rows.",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule_ok(cls, v: str | None) -> str | None:
        if v is not None and len(v.split()) != 5:
            raise ValueError(f"schedule {v!r} must be a cron expression with 5 fields")
        return v

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"sync name {v!r} must be lowercase letters, digits and _")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SyncConfig:
        fields = [m.field for m in self.fields]
        dupes = {f for f in fields if fields.count(f) > 1}
        if dupes:
            raise ValueError(f"fields mapped twice: {sorted(dupes)}")
        if self.mode == "upsert" and self.identity.match_on is None:
            raise ValueError(
                "mode 'upsert' needs identity.match_on (name or email) to create records"
            )
        if self.identity.match_on is not None and self.identity.match_on not in fields:
            raise ValueError(
                f"identity.match_on {self.identity.match_on!r} must also be mapped in 'fields'"
            )
        return self

    @property
    def mapped_columns(self) -> list[str]:
        """Source columns that feed Kizen fields (the fingerprint covers exactly these)."""
        return [m.column for m in self.fields]

    @property
    def sensitive_fields(self) -> frozenset[str]:
        """Fields (as given in ``fields[].field``) whose values the audit table must not hold."""
        return frozenset(m.field for m in self.fields if m.sensitive)

    def sensitive_field_keys(self, schema: ObjectSchema) -> frozenset[str]:
        """Every key under which a sensitive field's values can reach the audit table.

        ``fields[].field`` may be a field UUID, while plans, changes and mapping errors name
        fields by API name and Kizen's per-field messages by whatever the request used. So
        each sensitive mapping is resolved through the object's schema and contributes its
        API name and its field id, plus the spelling of the file (kept even when the schema
        does not know it, so that nothing sensitive slips through on a schema mismatch).
        """
        keys: set[str] = set()
        for m in self.fields:
            if not m.sensitive:
                continue
            keys.add(m.field)
            target = schema.field(m.field)
            if target is not None:
                keys.update((target.name, target.id))
        return frozenset(keys)

    @property
    def identifier_mapping(self) -> FieldMapping | None:
        """The mapping of the match key, when records are matched by name/email."""
        match = self.identity.match_on
        return next((m for m in self.fields if m.field == match), None) if match else None


#: Dagster executors a sync file can choose (``executor.type``), in the order of the README.
EXECUTOR_TYPES = ("in_process", "multiprocess", "celery", "k8s")
ExecutorType = Literal["in_process", "multiprocess", "celery", "k8s"]


class ExecutorConfig(_Model):
    """Where Dagster runs the steps of a sync run. Read by the Dagster project only.

    Kept in the sync file so that moving from one machine to Celery workers or Kubernetes is
    configuration, not a wrapper module of one's own.
    """

    type: ExecutorType | None = Field(
        default=None,
        description="in_process, multiprocess, celery or k8s; default $KIZEN_SYNC_EXECUTOR, "
        "else in_process.",
    )
    max_concurrent: int | None = Field(
        default=None, ge=1, description="Steps of one run at a time (multiprocess, k8s)."
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Further config of the Dagster executor, passed as is (celery: broker, "
        "backend, config_source, ...; k8s: job_namespace, ...).",
    )

    @model_validator(mode="after")
    def _concurrency_fits(self) -> ExecutorConfig:
        if self.max_concurrent is not None and self.type in ("in_process", "celery"):
            raise ValueError(
                f"max_concurrent does not apply to executor {self.type!r} (in_process runs one "
                "step at a time; celery: start more workers)"
            )
        if "max_concurrent" in self.config:
            raise ValueError("give max_concurrent as executor.max_concurrent, not in config")
        return self


class ProjectConfig(_Model):
    """The whole sync file."""

    warehouse: WarehouseConfig
    kizen: KizenConfig = Field(default_factory=KizenConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    syncs: list[SyncConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ProjectConfig:
        names = [s.name for s in self.syncs]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"sync names used twice: {sorted(dupes)}")
        return self

    def sync(self, name: str) -> SyncConfig:
        """The sync called ``name``; ConfigError listing the known names otherwise."""
        for s in self.syncs:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.syncs)
        raise ConfigError([ConfigProblem("syncs", f"no sync named {name!r} (known: {known})")])


def _expand_env(value: Any, path: str, problems: list[ConfigProblem]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            problems.append(ConfigProblem(path, f"environment variable ${{{var}}} is not set"))
            return ""

        return _ENV_RE.sub(sub, value)
    if isinstance(value, Mapping):
        return {
            k: _expand_env(v, f"{path}.{k}" if path else str(k), problems) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand_env(v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "literal[")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(file)"


def _remember_url(model: _WrittenUrl, written: Mapping[str, Any]) -> None:
    if isinstance(written.get("url"), str):
        model._url_as_written = written["url"]


def parse_config(data: Any, *, source: str | None = None) -> ProjectConfig:
    """Validate already-parsed YAML data; raise ConfigError with every problem."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            [ConfigProblem("(file)", "expected a mapping at the top level")], source=source
        )
    problems: list[ConfigProblem] = []
    expanded = _expand_env(data, "", problems)
    try:
        config = ProjectConfig.model_validate(expanded)
    except ValidationError as exc:
        unset = {p.key for p in problems}  # a value whose variable is unset: said once
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if _loc(err["loc"]) not in unset:
                problems.append(ConfigProblem(_loc(err["loc"]), msg))
        raise ConfigError(problems, source=source) from None
    if problems:
        raise ConfigError(problems, source=source)
    written = data.get("warehouse")
    if isinstance(written, Mapping):
        _remember_url(config.warehouse, written)
        if config.warehouse.state is not None and isinstance(written.get("state"), Mapping):
            _remember_url(config.warehouse.state, written["state"])
    return config


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that remembers duplicate keys, which plain YAML silently overwrites."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[ConfigProblem] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                line = key_node.start_mark.line + 1
                self.duplicates.append(
                    ConfigProblem(f"line {line}", f"key {key!r} appears twice in the same mapping")
                )
            seen.add(key if isinstance(key, str | int | float | bool) else id(key_node))
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> ProjectConfig:
    """Read and validate a sync file. Raises ConfigError naming every offending key.

    Malformed YAML is reported with its line and column; duplicate keys (which YAML would
    silently resolve to the last one) are reported together with every validation problem.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem("(file)", f"cannot read {p}: {exc.strerror}")]) from None
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError([ConfigProblem(where, f"not valid YAML: {exc}")], source=str(p)) from None
    finally:
        loader.dispose()
    try:
        config = parse_config(data, source=str(p))
    except ConfigError as exc:
        raise ConfigError([*loader.duplicates, *exc.problems], source=str(p)) from None
    if loader.duplicates:
        raise ConfigError(loader.duplicates, source=str(p))
    return config


#: Field types each mapping can feed; everything else is read-only or not syncable.
_READ_ONLY_NAMES = frozenset({"created", "updated"})


def validate_against_schema(
    sync: SyncConfig, schema: ObjectSchema, index: int = 0
) -> list[ConfigProblem]:
    """Check one sync's mappings against Kizen's schema; return every problem found.

    Checks that each field exists (by API name or UUID), is writable, that option labels
    used as defaults exist, and that the match key is the object's identifier field.
    """
    problems: list[ConfigProblem] = []
    base = f"syncs[{index}]"
    for i, mapping in enumerate(sync.fields):
        key = f"{base}.fields[{i}].field"
        field = schema.field(mapping.field)
        if field is None:
            known = ", ".join(sorted(f.name for f in schema.fields))
            problems.append(
                ConfigProblem(
                    key, f"object {schema.name!r} has no field {mapping.field!r} (fields: {known})"
                )
            )
            continue
        problems.extend(_check_field(field, mapping, f"{base}.fields[{i}]", schema))
    match = sync.identity.match_on
    if match is not None and match != schema.identifier_field:
        problems.append(
            ConfigProblem(
                f"{base}.identity.match_on",
                f"records of {schema.name!r} are identified by "
                f"{schema.identifier_field!r}, not {match!r}",
            )
        )
    return problems


def _check_field(
    field: FieldSchema, mapping: FieldMapping, key: str, schema: ObjectSchema
) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if field is schema.stage_field:
        problems.append(
            ConfigProblem(
                f"{key}.field",
                f"field 'stage' of pipeline {schema.name!r} is the record's pipeline stage: "
                "Kizen changes it only through PATCH /api/records/{object}/{id}/move, which "
                "kizen-sync does not send; remove this mapping and move records in Kizen",
            )
        )
    elif field.name in schema.derived_fields and field.name == "display_name":
        problems.append(
            ConfigProblem(
                f"{key}.field",
                f"field 'display_name' of {schema.name!r} is computed by Kizen from the "
                "record (its name); map the column to 'name' instead",
            )
        )
    elif field.is_read_only or field.name in _READ_ONLY_NAMES:
        problems.append(
            ConfigProblem(f"{key}.field", f"field {field.name!r} is read-only in Kizen")
        )
    if mapping.multi_mode == "mirror" and not field.is_multi_valued:
        problems.append(
            ConfigProblem(
                f"{key}.multi_mode", f"field {field.name!r} ({field.field_type}) is single-valued"
            )
        )
    if mapping.format in {"list", "delimited", "json"} and not field.is_multi_valued:
        problems.append(
            ConfigProblem(
                f"{key}.format", f"field {field.name!r} ({field.field_type}) holds one value"
            )
        )
    if mapping.match == "id" and field.field_type in OPTION_TYPES and not field.options:
        problems.append(ConfigProblem(f"{key}.match", f"field {field.name!r} has no options"))
    return problems
