"""Frozen settings, one model per external system.

Every model reads its own environment prefix (``KAFKA_``, ``CLICKHOUSE_``,
``CLICKHOUSE_HTTP_``, ``REDIS_``, ``LIMITS_``, ``WORKER_``). :func:`load_settings`
builds them once at start-up; everything else receives them as arguments and never reads the
environment itself.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach the Kafka cluster and which consumer group to join."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True, extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    group_id: str = "request-worker"
    topic_prefix: str = Field(
        default="",
        description="Prepended to every declared topic name, to run several stacks on one cluster.",
    )
    compression: Literal["none", "gzip", "lz4", "zstd"] = "lz4"
    session_timeout_s: float = Field(
        default=15.0,
        ge=6,
        le=300,
        description="How long the group waits for a silent worker before moving its partitions.",
    )

    @property
    def broker_url(self) -> str:
        """The bootstrap servers as faust's ``kafka://`` URL list."""
        return ";".join(f"kafka://{server.strip()}" for server in self.bootstrap_servers.split(","))

    def topic(self, name: str) -> str:
        """The full name of a declared topic on this cluster."""
        return f"{self.topic_prefix}{name}"


class ClickHouseSettings(BaseSettings):
    """Where results are persisted: embedded chDB on disk, or a server by URL."""

    model_config = SettingsConfigDict(env_prefix="CLICKHOUSE_", frozen=True, extra="ignore")

    url: SecretStr | None = Field(
        default=None,
        description="http(s)://user:password@host:port of a server; unset = embedded chDB.",
    )
    path: Path = Path(".data/chdb")
    database: str = Field(default="worker", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    insert_retry_max_s: float = Field(default=30.0, gt=0)

    @property
    def embedded(self) -> bool:
        """True when the worker runs ClickHouse in-process (chDB)."""
        return self.url is None

    def describe(self) -> str:
        """A printable location, without credentials."""
        if self.url is None:
            return f"chdb://{self.path.resolve()}"
        parts = urlsplit(self.url.get_secret_value())
        return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ClickHouseHttpSettings(BaseSettings):
    """The read-only ClickHouse HTTP endpoint the worker serves over its embedded chDB.

    Only in embedded mode: chDB locks its directory, so while the worker runs this
    endpoint is how analysts, dashboards and ``worker db query`` reach the data.
    Every query runs with ``readonly=1`` and within the caps below; a client may
    lower a cap for its own query, never raise it (see docs/analytics.md).
    """

    model_config = SettingsConfigDict(env_prefix="CLICKHOUSE_HTTP_", frozen=True, extra="ignore")

    enabled: bool = Field(default=True, description="Serve the endpoint in embedded mode.")
    host: str = Field(default="127.0.0.1", description="Listen address; loopback by default.")
    port: int = Field(default=8124, ge=0, le=65535, description="0 picks a free port.")
    user: str = Field(default="analyst", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    password: SecretStr | None = Field(
        default=None,
        description="Unset: a random password per run, written to the endpoint file (0600).",
    )
    allow_anonymous: bool = Field(
        default=False,
        description="Accept requests without credentials; only allowed on a loopback host.",
    )
    max_concurrent_queries: int = Field(default=2, ge=1, le=64)
    queue_timeout_s: float = Field(
        default=10.0, ge=0, description="How long a query waits for a free slot."
    )
    max_execution_time: float = Field(default=30.0, gt=0, description="Seconds per query.")
    max_memory_usage: int = Field(default=1 << 30, gt=0, description="Bytes per query.")
    max_result_rows: int = Field(default=1_000_000, gt=0)
    max_result_bytes: int = Field(default=128 << 20, gt=0)
    max_threads: int = Field(default=1, gt=0, le=256, description="Threads per query.")
    max_query_size: int = Field(default=256 << 10, gt=0, description="Bytes of SQL per request.")

    @model_validator(mode="after")
    def _anonymous_only_on_loopback(self) -> Self:
        if self.allow_anonymous and not is_loopback(self.host):
            raise ValueError(
                "CLICKHOUSE_HTTP_ALLOW_ANONYMOUS is only allowed with a loopback "
                f"CLICKHOUSE_HTTP_HOST (got {self.host!r})"
            )
        return self


class RedisSettings(BaseSettings):
    """The Redis server used by the API layer."""

    model_config = SettingsConfigDict(env_prefix="REDIS_", frozen=True, extra="ignore")

    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    key_prefix: str = "rw:"
    socket_timeout_s: float = Field(default=2.0, gt=0)


class LimitsSettings(BaseSettings):
    """What a request may be before it is parsed, and the default rate limits."""

    model_config = SettingsConfigDict(env_prefix="LIMITS_", frozen=True, extra="ignore")

    max_message_bytes: int = Field(default=256 * 1024, gt=0)
    max_json_depth: int = Field(default=32, gt=0)
    rate_per_second: float = Field(default=5000.0, gt=0, description="Tokens per tenant per s.")
    rate_burst: int = Field(default=10000, gt=0, description="Bucket size per tenant.")
    on_redis_unavailable: Literal["allow", "reject"] = Field(
        default="allow",
        description="allow: serve unlimited while Redis is down; reject: stall and retry.",
    )


class WorkerSettings(BaseSettings):
    """The worker process itself: identity, batching, files, web endpoints."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", frozen=True, extra="ignore")

    app_id: str = "request-worker"
    data_dir: Path = Path(".data")
    topics_file: Path = Path("topics/topics.toml")
    batch_max: int = Field(default=1000, gt=0, le=100_000)
    batch_linger_s: float = Field(default=0.05, gt=0)
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    create_topics: bool = Field(
        default=False, description="Create missing declared topics at start-up instead of failing."
    )

    @field_validator("data_dir", "topics_file")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class Settings:
    """The settings of every external system, built once."""

    __slots__ = ("clickhouse", "clickhouse_http", "kafka", "limits", "redis", "worker")

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        clickhouse: ClickHouseSettings,
        redis: RedisSettings,
        limits: LimitsSettings,
        worker: WorkerSettings,
        clickhouse_http: ClickHouseHttpSettings | None = None,
    ) -> None:
        self.kafka = kafka
        self.clickhouse = clickhouse
        # Omitted (tests, tools that serve no analysts): the documented defaults,
        # without reading the environment.
        self.clickhouse_http = clickhouse_http or ClickHouseHttpSettings.model_construct()
        self.redis = redis
        self.limits = limits
        self.worker = worker


def load_settings() -> Settings:
    """Read every settings model from the environment (the one place that does)."""
    return Settings(
        kafka=KafkaSettings(),
        clickhouse=ClickHouseSettings(),
        redis=RedisSettings(),
        limits=LimitsSettings(),
        worker=WorkerSettings(),
        clickhouse_http=ClickHouseHttpSettings(),
    )
