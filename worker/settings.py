"""Frozen settings, one model per external system.

Every model reads its own environment prefix (``KAFKA_``, ``CLICKHOUSE_``,
``REDIS_``, ``LIMITS_``, ``WORKER_``, ``CACHE_``). :func:`load_settings` builds them once at
start-up; everything else receives them as arguments and never reads the
environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
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


class CacheSettings(BaseSettings):
    """The result cache on RocksDB-backed Faust tables: TTLs, memory, sweeping, warming.

    The memory bounds hold for the whole process: every table partition (active
    or standby) shares one block cache and one memtable budget.
    """

    model_config = SettingsConfigDict(env_prefix="CACHE_", frozen=True, extra="ignore")

    enabled: bool = Field(default=True, description="false: every request is answered uncached.")
    ttl_s: dict[str, float] = Field(
        default_factory=dict,
        description='Per-operation TTL overrides in seconds, JSON: {"price.quote": 60}; 0 = off.',
    )
    not_found_ttl_s: dict[str, float] = Field(
        default_factory=dict,
        description="Per-operation TTL overrides for cached not_found answers, JSON.",
    )
    block_cache_mb: int = Field(default=64, ge=1, le=65536)
    memtable_budget_mb: int = Field(default=64, ge=4, le=65536)
    write_buffer_mb: int = Field(default=8, ge=1, le=1024)
    max_open_files: int = Field(default=128, ge=16, le=100_000)
    sweep_interval_s: float = Field(default=30.0, gt=0)
    sweep_max_entries: int = Field(default=10_000, gt=0, description="Entries examined per sweep.")
    warm_max_keys: int = Field(default=1000, ge=0, le=1_000_000)
    warm_window_s: int = Field(default=3600, gt=0, description="How far back hot keys are read.")
    warm_timeout_s: float = Field(
        default=10.0, ge=0, description="Warming stops after this long; the worker serves anyway."
    )

    @field_validator("ttl_s", "not_found_ttl_s")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for name, seconds in value.items():
            if seconds < 0:
                raise ValueError(f"TTL of {name!r} must be >= 0, got {seconds}")
        return value


class Settings:
    """The settings of every external system, built once."""

    __slots__ = ("cache", "clickhouse", "kafka", "limits", "redis", "worker")

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        clickhouse: ClickHouseSettings,
        redis: RedisSettings,
        limits: LimitsSettings,
        worker: WorkerSettings,
        cache: CacheSettings,
    ) -> None:
        self.kafka = kafka
        self.clickhouse = clickhouse
        self.redis = redis
        self.limits = limits
        self.worker = worker
        self.cache = cache


def load_settings() -> Settings:
    """Read every settings model from the environment (the one place that does)."""
    return Settings(
        kafka=KafkaSettings(),
        clickhouse=ClickHouseSettings(),
        redis=RedisSettings(),
        limits=LimitsSettings(),
        worker=WorkerSettings(),
        cache=CacheSettings(),
    )
