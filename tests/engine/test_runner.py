"""How the runner builds its Kizen connection from the sync file and the environment."""

from __future__ import annotations

from typing import Any

import pytest

from kizen_sync.config import ProjectConfig, parse_config
from kizen_sync.engine import client_settings_from_config
from kizen_sync.errors import ConfigError

BUSINESS = "5e1f0c2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
USER = "916dac1b-5640-4268-9324-06132f342488"


def config(**kizen: Any) -> ProjectConfig:
    return parse_config(
        {
            "warehouse": {"url": "sqlite://"},
            "kizen": kizen,
            "syncs": [
                {
                    "name": "s",
                    "object": "accounts",
                    "source": {"table": "t", "primary_key": ["id"]},
                    "identity": {"record_id_column": "kizen_id"},
                    "fields": [{"column": "n", "field": "name"}],
                }
            ],
        }
    )


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KIZEN_API_KEY", "KIZEN_USER_ID", "KIZEN_BUSINESS_ID", "KIZEN_BASE_URL", "MY_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_key_comes_from_the_named_variable_and_file_settings_apply(monkeypatch):
    monkeypatch.setenv("MY_KEY", "secret-from-env")
    settings = client_settings_from_config(
        config(
            api_key_env="MY_KEY",
            business_id=BUSINESS,
            user_id=USER,
            max_in_flight=5,
            requests_per_second=7,
            base_url="http://127.0.0.1:8765",
        )
    )
    assert settings.api_key.get_secret_value() == "secret-from-env"
    assert (settings.max_in_flight, settings.requests_per_second) == (5, 7)
    assert settings.base_url == "http://127.0.0.1:8765"
    assert "secret-from-env" not in repr(settings)


def test_every_missing_credential_is_named_at_once():
    with pytest.raises(ConfigError) as caught:
        client_settings_from_config(config(api_key_env="MY_KEY"))
    keys = [p.key for p in caught.value.problems]
    assert keys == ["kizen.api_key_env", "kizen.business_id", "kizen.user_id"]
    assert "environment variable MY_KEY is not set" in str(caught.value)


def test_ids_and_base_url_fall_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("KIZEN_API_KEY", "k")
    monkeypatch.setenv("KIZEN_USER_ID", USER)
    monkeypatch.setenv("KIZEN_BUSINESS_ID", BUSINESS)
    monkeypatch.setenv("KIZEN_BASE_URL", "http://kizen.internal:9000")
    settings = client_settings_from_config(config())
    assert (settings.user_id, settings.business_id) == (USER, BUSINESS)
    # The file did not set base_url, so the environment's wins over the default.
    assert settings.base_url == "http://kizen.internal:9000"


def test_overrides_win_over_file_and_environment(monkeypatch):
    monkeypatch.setenv("KIZEN_API_KEY", "k")
    settings = client_settings_from_config(
        config(business_id=BUSINESS, user_id=USER, base_url="https://app.go.kizen.com"),
        base_url="http://127.0.0.1:1234",
    )
    assert settings.base_url == "http://127.0.0.1:1234"
