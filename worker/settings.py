"""Frozen settings, one model per external system.

Every model reads its own environment prefix (``KAFKA_``, ``CLICKHOUSE_``,
``REDIS_``, ``LIMITS_``, ``WORKER_``, and ``WORKER_FAULT_`` for fault injection in
tests). :func:`load_settings` builds them once at
start-up; everything else receives them as arguments and never reads the
environment itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import ConfigurationError


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
    log_format: Literal["json", "console"] = Field(
        default="json",
        description="json: one JSON object per line (for log shippers); console: for people.",
    )
    shutdown_timeout_s: float = Field(
        default=25.0,
        gt=0,
        description="Longest graceful stop after SIGTERM; past it the worker exits anyway and "
        "unacknowledged messages are consumed again. Keep it below the supervisor's grace period.",
    )
    health_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often dependencies are checked and partition end offsets refreshed.",
    )
    health_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="Longest wait for one dependency check."
    )
    stall_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="A partition with lag whose committed offset has not moved for this long "
        "is stalled: the worker is no longer ready.",
    )
    exit_on_stall: bool = Field(
        default=False,
        description="Exit (code 4) when a partition stalls, for the supervisor to restart it.",
    )

    @field_validator("data_dir", "topics_file")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()


class FaultSettings(BaseSettings):
    """Fault injection for the reliability tests. Never set in production.

    ``clickhouse_insert_delay_s`` makes every ClickHouse insert wait that long
    first, on the sink's thread, as a slow server would: rows stay buffered.
    """

    model_config = SettingsConfigDict(env_prefix="WORKER_FAULT_", frozen=True, extra="ignore")

    clickhouse_insert_delay_s: float = Field(default=0.0, ge=0)


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


_Model = TypeVar("_Model", bound=BaseSettings)


def _read(model: type[_Model], errors: list[dict[str, str]]) -> _Model:
    """``model`` from the environment; its problems appended to ``errors`` (variable, message)."""
    try:
        return model()
    except ValidationError as exc:
        prefix = str(model.model_config.get("env_prefix", ""))
        for error in exc.errors(include_url=False, include_input=False):
            field = "_".join(str(part) for part in error["loc"]).upper()
            errors.append({"variable": f"{prefix}{field}", "message": error["msg"]})
        return cast("_Model", model.model_construct())


def load_settings() -> Settings:
    """Read every settings model from the environment (the one place that does).

    Raises :class:`~worker.errors.ConfigurationError` naming every invalid variable
    (``details["errors"]``: ``variable`` and ``message`` of each).
    """
    errors: list[dict[str, str]] = []
    settings = Settings(
        kafka=_read(KafkaSettings, errors),
        clickhouse=_read(ClickHouseSettings, errors),
        redis=_read(RedisSettings, errors),
        limits=_read(LimitsSettings, errors),
        worker=_read(WorkerSettings, errors),
        faults=_read(FaultSettings, errors),
    )
    if errors:
        text = "; ".join(f"{e['variable']}: {e['message']}" for e in errors)
        raise ConfigurationError(
            f"invalid configuration: {text}. Operator action: fix these environment variables "
            "(see the README's configuration table)",
            details={"errors": errors},
        )
    return settings
