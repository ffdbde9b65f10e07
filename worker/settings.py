"""Frozen settings, one model per external system.

Every model reads its own environment prefix (``KAFKA_``, ``CLICKHOUSE_``,
``REDIS_``, ``LIMITS_``, ``WORKER_``, and ``WORKER_FAULT_`` for fault injection in
tests). :func:`load_settings` builds them once at
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
    migrate_on_start: bool = Field(
        default=True,
        description="Apply migrations at start-up; false = only check that the schema is "
        "current (for a writer user without DDL rights).",
    )
    insert_retry_max_s: float = Field(
        default=10.0, gt=0, description="Longest wait between two attempts of one insert."
    )
    insert_max_rows: int = Field(
        default=100_000, gt=0, description="Most rows in one INSERT; larger slices are split."
    )
    insert_min_rows: int = Field(
        default=100,
        gt=0,
        description="Floor of the insert size when memory or timeout errors shrink it.",
    )
    retention_days: int = Field(
        default=90, ge=0, description="TTL of requests rows in days; 0 keeps them forever."
    )
    dead_letter_retention_days: int = Field(
        default=30, ge=0, description="TTL of dead_letters rows in days; 0 keeps them forever."
    )
    usage_retention_days: int = Field(
        default=400,
        ge=0,
        description="TTL of the per-minute usage views in days; 0 keeps them forever.",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0)
    query_timeout_s: float = Field(
        default=60.0, gt=0, description="Server mode: longest wait for one query or insert."
    )
    tls_verify: bool = Field(
        default=True, description="Verify the server certificate (https URLs only)."
    )
    tls_ca_cert: Path | None = Field(
        default=None, description="PEM bundle of the CA that signed the server certificate."
    )
    tls_client_cert: Path | None = Field(
        default=None, description="PEM client certificate, for servers that require mutual TLS."
    )
    tls_client_key: Path | None = Field(
        default=None, description="Private key of the client certificate, if not in that file."
    )
    tls_server_host_name: str | None = Field(
        default=None,
        description="Name to check the server certificate against (behind a tunnel or proxy).",
    )

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
    stream_buffer_max: int | None = Field(
        default=None,
        gt=0,
        description="Events Faust holds ahead of the agent before it stops fetching "
        "(backpressure); default max(4096, 2 * batch_max).",
    )
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_stats: bool = Field(
        default=False,
        description="Serve Faust's monitor statistics (read and committed offsets per "
        "partition, ...) as JSON at / on the web server, for debugging.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    create_topics: bool = Field(
        default=False, description="Create missing declared topics at start-up instead of failing."
    )

    @field_validator("data_dir", "topics_file")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def stream_buffer(self) -> int:
        """How many events Faust may buffer per stream before it pauses fetching."""
        return self.stream_buffer_max or max(4096, self.batch_max * 2)


FaultPoint = Literal["before_insert", "after_insert", "after_publish", "after_ack"]


class FaultSettings(BaseSettings):
    """Fault injection for the reliability tests. Never set in production.

    ``point`` makes the worker kill itself with SIGKILL when a batch reaches that
    point of delivery, after ``after_batches`` batches passed it unharmed.
    ``clickhouse_down_file`` makes every ClickHouse call fail while that file
    exists (its content picks the failure: empty for unreachable,
    ``too_many_parts`` or ``memory_limit_exceeded`` for an overloaded server).
    """

    model_config = SettingsConfigDict(env_prefix="WORKER_FAULT_", frozen=True, extra="ignore")

    point: FaultPoint | None = None
    after_batches: int = Field(default=0, ge=0)
    clickhouse_down_file: Path | None = None


class Settings:
    """The settings of every external system, built once."""

    __slots__ = ("clickhouse", "faults", "kafka", "limits", "redis", "worker")

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        clickhouse: ClickHouseSettings,
        redis: RedisSettings,
        limits: LimitsSettings,
        worker: WorkerSettings,
        faults: FaultSettings | None = None,
    ) -> None:
        self.kafka = kafka
        self.clickhouse = clickhouse
        self.redis = redis
        self.limits = limits
        self.worker = worker
        # No faults unless asked for; model_construct reads no environment.
        self.faults = faults if faults is not None else FaultSettings.model_construct()


def load_settings() -> Settings:
    """Read every settings model from the environment (the one place that does)."""
    return Settings(
        kafka=KafkaSettings(),
        clickhouse=ClickHouseSettings(),
        redis=RedisSettings(),
        limits=LimitsSettings(),
        worker=WorkerSettings(),
        faults=FaultSettings(),
    )
