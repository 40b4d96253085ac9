"""The one model of a Kizen connection: where, as whom, how fast, how patient.

Every value is resolved in one place, by pydantic-settings, in one order: a value given
explicitly (the sync file's ``kizen:`` section, a Dagster resource, a test), else the
``KIZEN_<FIELD>`` environment variable (``KIZEN_BUSINESS_ID``, ``KIZEN_REQUESTS_PER_SECOND``,
...), else the default. :class:`ConnectionOptions` holds the fields a sync file may set;
:class:`ClientSettings` adds the credentials and requires them. The API key comes only from
the environment (or an explicit argument), is held in a :class:`pydantic.SecretStr` and never
appears in ``repr``, logs or exceptions.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_BASE_URL", "ENV_PREFIX", "ClientSettings", "ConnectionOptions"]

DEFAULT_BASE_URL = "https://app.go.kizen.com"
#: Prefix of the environment variables that fill unset fields (``KIZEN_API_KEY`` ...).
ENV_PREFIX = "KIZEN_"


def _default_user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"kizen-sync/{version('kizen-sync')}"
    except PackageNotFoundError:
        return "kizen-sync"


class ConnectionOptions(BaseModel):
    """The settings of a Kizen connection that may be written down (everything but the key).

    The defaults are safe for an unknown server: no client-side rate limit (Kizen documents
    none), 16 requests in flight, retries bounded both by count and by time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(
        default=DEFAULT_BASE_URL,
        description="Scheme and host of the Kizen API; routes are appended under /api.",
    )
    business_id: str | None = Field(
        default=None, description="X-BUSINESS-ID: the business (tenant) every call targets."
    )
    user_id: str | None = Field(
        default=None, description="X-USER-ID: the user the API key belongs to."
    )
    timeout_s: float = Field(default=30.0, gt=0, description="Read/write/pool timeout per request.")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="TCP+TLS connect timeout.")
    requests_per_second: float | None = Field(
        default=None,
        gt=0,
        description="Client-side pacing; None = unlimited (or the adaptive start when adaptive).",
    )
    rate_headroom: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Fraction of requests_per_second actually used: pacing at exactly a "
        "server's limit meets its window edges and earns 429s (figures: bench/README.md).",
    )
    burst: int | None = Field(
        default=None,
        ge=1,
        description="Token-bucket depth; default half the headroom, (1 - rate_headroom) / 2 "
        "of requests_per_second (at least 1), so no one-second window sees more than the limit.",
    )
    max_in_flight: int = Field(
        default=16, ge=1, le=1024, description="Cap on concurrent requests across the client."
    )
    adaptive: bool = Field(
        default=False,
        description="AIMD pacing for an unknown limit: halve the rate on 429 (pausing the "
        "whole client for Retry-After), climb back while calls succeed.",
    )
    max_attempts: int = Field(
        default=8, ge=1, description="Attempts per call, not counting attempts answered 429."
    )
    retry_budget_s: float = Field(
        default=120.0,
        gt=0,
        description="Total time one call may spend, waits included.",
    )
    max_retry_after_s: float = Field(
        default=120.0, ge=0, description="Cap on an honoured Retry-After delay."
    )
    backoff_base_s: float = Field(default=0.1, gt=0, description="Full-jitter backoff multiplier.")
    backoff_max_s: float = Field(default=10.0, gt=0, description="Cap of one backoff wait.")
    verify_tls: bool = Field(
        default=True, description="Verify server certificates; False logs a WARNING at startup."
    )
    trust_env: bool = Field(
        default=True,
        description="Honour HTTP(S)_PROXY, NO_PROXY and SSL_CERT_FILE from the environment.",
    )
    user_agent: str = Field(default_factory=_default_user_agent, description="User-Agent header.")

    @field_validator("base_url")
    @classmethod
    def _strip_base(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"base_url {value!r} must start with http:// or https://")
        return value.removesuffix("/api")


class ClientSettings(ConnectionOptions, BaseSettings):
    """Everything a :class:`~kizen_sync.client.KizenClient` needs to talk to one business.

    Unset fields are read from ``KIZEN_<FIELD>`` environment variables (see the module
    docstring); the business, the user and the key are required.
    """

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix=ENV_PREFIX, env_ignore_empty=True
    )

    business_id: str = Field(description="X-BUSINESS-ID: the business (tenant) every call targets.")
    user_id: str = Field(description="X-USER-ID: the user the API key belongs to.")
    api_key: SecretStr = Field(description="X-API-KEY; redacted in repr, logs and errors.")

    @property
    def effective_burst(self) -> int:
        """Bucket depth: the explicit ``burst``, else half of the headroom's requests.

        A token bucket lets ``burst + paced_rate`` requests into any one second. Fixed-window
        limits (DRF throttling, the emulator) count exactly that, so the burst must fit in the
        headroom ``requests_per_second - paced_rate``; half of it is used, the other half
        absorbs requests bunching up on the way to the server. A deeper bucket lets more than
        the limit into some windows and earns 429s (figures: ``bench/README.md``).
        """
        if self.burst is not None:
            return self.burst
        if self.requests_per_second is None:
            return 1
        return max(1, int(self.requests_per_second * (1 - self.rate_headroom) / 2))

    @property
    def paced_rate(self) -> float | None:
        """The bucket's rate: ``requests_per_second`` times ``rate_headroom``."""
        if self.requests_per_second is None:
            return None
        return self.requests_per_second * self.rate_headroom

    @classmethod
    def from_env(cls, **overrides: Any) -> ClientSettings:
        """Settings from the given values, the ``KIZEN_*`` environment, then the defaults.

        Args:
            **overrides: any field; ``None`` values are ignored. ``api_key`` may be a str.

        Raises:
            pydantic.ValidationError: a required value (key, user, business) is missing.
        """
        return cls(**{k: v for k, v in overrides.items() if v is not None})
