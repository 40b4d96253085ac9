from __future__ import annotations

from pathlib import Path

import pytest

from kizen_sync.config import load_config, parse_config
from kizen_sync.errors import ConfigError

GOOD = """
warehouse:
  url: ${WH_URL:-sqlite:///demo.db}
kizen:
  business_id: 5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b
syncs:
  - name: contacts
    object: client_client
    source:
      table: crm_contacts
      primary_key: [contact_id]
      cursor_column: updated_at
    identity:
      match_on: email
    fields:
      - {column: email, field: email, sensitive: true}
      - {column: first_name, field: first_name}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kizen.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return {p.key: p.message for p in exc.value.problems}


def test_good_file_loads_with_env_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WH_URL", raising=False)
    config = load_config(write(tmp_path, GOOD))
    assert config.warehouse.url == "sqlite:///demo.db"
    sync = config.sync("contacts")
    assert sync.mapped_columns == ["email", "first_name"]
    assert sync.sensitive_fields == frozenset({"email"})
    monkeypatch.setenv("WH_URL", "postgresql+psycopg://u@h/db")
    assert load_config(write(tmp_path, GOOD)).warehouse.url == "postgresql+psycopg://u@h/db"


def test_every_problem_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    text = GOOD.replace("name: contacts", "name: Contacts!").replace(
        "table: crm_contacts", "table: 'users; drop table x'"
    )
    text = text.replace("cursor_column: updated_at", "cursor_column: updated_at\n      colour: red")
    text = text.replace(
        "{column: first_name, field: first_name}",
        "{column: first_name, field: first_name, timezone: Mars/Base}",
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    found = problems(info)
    assert "must be lowercase" in found["syncs[0].name"]
    assert "not a plain SQL identifier" in found["syncs[0].source.table"]
    assert "Extra inputs" in found["syncs[0].source.colour"]
    assert "unknown time zone 'Mars/Base'" in found["syncs[0].fields[1].timezone"]
    assert len(found) == 4
    assert str(tmp_path / "kizen.yaml") in str(info.value)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            write(tmp_path, GOOD.replace("    object: client_client", "    object: [client_client"))
        )
    (problem,) = info.value.problems
    assert problem.key.startswith("line ")
    assert "not valid YAML" in problem.message


def test_duplicate_keys_are_reported_with_their_line(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    object: client_client", "    object: client_client\n    object: accounts"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert problems(info) == {"line 9": "key 'object' appears twice in the same mapping"}


def test_missing_env_var_and_model_problems_come_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    text = GOOD.replace("${WH_URL:-sqlite:///demo.db}", "${NOPE}").replace(
        "match_on: email", "match_on: name"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    found = problems(info)
    assert found["warehouse.url"] == "environment variable ${NOPE} is not set"
    assert "must also be mapped" in found["syncs[0]"]


@pytest.mark.parametrize(
    ("change", "key", "text"),
    [
        (
            {"source": {"table": "t", "query": "select 1", "primary_key": ["id"]}},
            "syncs[0].source",
            "exactly one",
        ),
        (
            {"source": {"table": "a.b.c", "primary_key": ["id"]}},
            "syncs[0].source.table",
            "schema.name",
        ),
        (
            {"source": {"table": "t", "primary_key": ["id", "id"]}},
            "syncs[0].source.primary_key",
            "twice",
        ),
        (
            {"source": {"table": "t", "primary_key": ["id"], "soft_delete_column": "id"}},
            "syncs[0].source",
            "primary key",
        ),
        ({"schedule": "hourly"}, "syncs[0].schedule", "5 fields"),
        ({"partitions": {"start": "yesterday"}}, "syncs[0].partitions.start", "ISO date"),
    ],
)
def test_sync_validation(change: dict[str, object], key: str, text: str) -> None:
    sync: dict[str, object] = {
        "name": "s",
        "object": "accounts",
        "source": {"table": "t", "primary_key": ["id"]},
        "identity": {"record_id_column": "kid"},
        "fields": [{"column": "n", "field": "name"}],
    }
    sync.update(change)
    with pytest.raises(ConfigError) as info:
        parse_config({"warehouse": {"url": "sqlite://"}, "syncs": [sync]})
    assert text in problems(info)[key]


def test_kizen_ids_must_be_uuids() -> None:
    data = {"warehouse": {"url": "sqlite://"}, "kizen": {"user_id": "alex"}, "syncs": []}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    found = problems(info)
    assert found["kizen.user_id"] == "'alex' is not a UUID"
    assert "syncs" in found  # at least one sync is required: reported in the same error


# --- the one Kizen connection model: file, then KIZEN_* environment, then default -------------

USER = "916dac1b-5640-4268-9324-06132f342488"


def test_connection_values_come_from_the_file_then_the_environment_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIZEN_API_KEY", "key-from-env")
    monkeypatch.setenv("KIZEN_USER_ID", USER)
    monkeypatch.setenv("KIZEN_BUSINESS_ID", "0" * 8 + "-0000-4000-8000-" + "0" * 12)
    monkeypatch.setenv("KIZEN_REQUESTS_PER_SECOND", "12")
    monkeypatch.setenv("KIZEN_MAX_IN_FLIGHT", "3")
    text = GOOD.replace("kizen:\n", "kizen:\n  max_in_flight: 7\n")
    settings = load_config(write(tmp_path, text)).kizen.client_settings()
    assert settings.business_id == "5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"  # the file wins
    assert settings.max_in_flight == 7  # the file wins
    assert settings.user_id == USER  # only in the environment
    assert settings.requests_per_second == 12  # only in the environment
    assert settings.timeout_s == 30.0  # nowhere: the default
    assert settings.api_key.get_secret_value() == "key-from-env"


def test_a_bad_value_in_the_environment_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIZEN_API_KEY", "k")
    monkeypatch.setenv("KIZEN_USER_ID", USER)
    monkeypatch.setenv("KIZEN_MAX_IN_FLIGHT", "many")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD)).kizen.client_settings()
    assert "kizen.max_in_flight" in problems(caught)


def test_a_custom_key_variable_never_falls_back_to_kizen_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KIZEN_API_KEY", "the-wrong-account")
    monkeypatch.setenv("KIZEN_USER_ID", USER)
    monkeypatch.delenv("STAGING_KIZEN_KEY", raising=False)
    text = GOOD.replace("kizen:\n", "kizen:\n  api_key_env: STAGING_KIZEN_KEY\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text)).kizen.client_settings()
    assert "STAGING_KIZEN_KEY is not set" in problems(caught)["kizen.api_key_env"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "oracle+oracledb://scott:tiger@db.example:1521/?service_name=orcl",
            "warehouse dialect 'oracle' is not supported "
            "(supported: bigquery, duckdb, postgresql, redshift, snowflake, sqlite)",
        ),
        ("mysql://u:p@h/db", "warehouse dialect 'mysql' is not supported"),
        ("not a url", "not a SQLAlchemy URL (dialect+driver://...)"),
    ],
)
def test_an_unsupported_warehouse_is_refused_naming_the_dialect(url: str, message: str) -> None:
    sync = {
        "name": "s",
        "object": "accounts",
        "source": {"table": "t", "primary_key": ["id"]},
        "identity": {"record_id_column": "kid"},
        "fields": [{"column": "n", "field": "name"}],
    }
    with pytest.raises(ConfigError) as info:
        parse_config({"warehouse": {"url": url}, "syncs": [sync]})
    found = problems(info)["warehouse.url"]
    assert found.startswith(message)
    assert "tiger" not in str(info.value)  # the password never appears


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///w.db",
        "postgresql+psycopg://u@h/db",
        "duckdb:///w.duckdb",
        "snowflake://u:p@account/db/schema?warehouse=wh",
        "bigquery://project/dataset",
        "redshift+redshift_connector://u:p@cluster:5439/dev",
    ],
)
def test_every_supported_warehouse_url_validates(url: str) -> None:
    sync = {
        "name": "s",
        "object": "accounts",
        "source": {"table": "t", "primary_key": ["id"]},
        "identity": {"record_id_column": "kid"},
        "fields": [{"column": "n", "field": "name"}],
    }
    assert parse_config({"warehouse": {"url": url}, "syncs": [sync]}).warehouse.url == url


def test_the_supported_list_is_the_dialect_modules() -> None:
    from kizen_sync.config import WAREHOUSE_DIALECTS
    from kizen_sync.warehouse import supported_names

    assert list(WAREHOUSE_DIALECTS) == supported_names()
