"""Frozen settings, one model per external system.

Every model reads its own environment prefix (``KAFKA_``, ``CLICKHOUSE_``,
``CLICKHOUSE_HTTP_``, ``REDIS_``, ``LIMITS_``, ``SECURITY_``, ``WORKER_``, ``CACHE_``,
and ``WORKER_FAULT_`` for fault injection in tests). :func:`load_settings` builds them once at
start-up; everything else receives them as arguments and never reads the
environment itself.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from pathlib import Path
from typing import Literal, Self, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker.errors import ConfigurationError
from worker.settings_rules import (
    ExistingFile,
    SecretSettings,
    TlsClientFiles,
    check_kafka_security,
    check_redis_security,
)

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


#: The group's rebalance timeout is this far below the request timeout: a join request
#: waits for the rebalance on the broker and must not time out on the client first.
REBALANCE_BELOW_REQUEST_S = 10.0


class KafkaSettings(TlsClientFiles):
    """How to reach the Kafka cluster and which consumer group to join.

    ``security_protocol`` picks TLS (``SSL``, ``SASL_SSL``) and SASL authentication
    (``SASL_*``). The same settings reach every Kafka client the worker and its
    commands create (``worker.connections.kafka``). SASL without TLS sends the
    password in the clear and is refused unless ``allow_sasl_plaintext`` says so.
    """

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True, extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: KafkaProtocol = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(
        default=None, description="Or KAFKA_SASL_PASSWORD_FILE, a file holding it."
    )
    allow_sasl_plaintext: bool = Field(
        default=False,
        description="Accept SASL_PLAINTEXT, which sends credentials unencrypted (PLAIN) "
        "or lets anyone on the path read and alter the traffic (SCRAM).",
    )
    tls_check_hostname: bool = Field(
        default=True,
        description="Check that a broker's certificate names the host connected to.",
    )
    group_id: str = "request-worker"
    topic_prefix: str = Field(
        default="",
        description="Prepended to every declared topic name, to run several stacks on one cluster.",
    )
    compression: Literal["none", "gzip", "lz4", "zstd"] = Field(
        default="zstd",
        description=(
            "Compression of produced batches. zstd by default: at its level 3 it compresses "
            "response batches about 1.5x smaller than lz4 at the level aiokafka uses (9), "
            "in a fifth of the CPU time."
        ),
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=5000,
        description=(
            "How long the broker may hold a fetch that finds no data. Faust asks for 1,500 ms; "
            "but while the requests partitions still hold fetched records, a fetch for the "
            "idle partitions alone (reference data) stalled the next fetch of requests for "
            "that long, and the worker waited for input with a backlog on the broker."
        ),
    )
    session_timeout_s: float = Field(
        default=15.0,
        ge=6,
        le=300,
        description="How long the group waits for a silent worker before moving its partitions.",
    )
    request_timeout_s: float = Field(
        default=40.0,
        ge=16,
        le=600,
        description=(
            "How long a request to the broker may go unanswered before the client drops the "
            "connection and retries; the group's rebalance timeout is 10 s less, so a join "
            "request outlasts the rebalance it waits for (at least KAFKA_SESSION_TIMEOUT_S + 10)."
        ),
    )

    reply_to_allowlist: str = Field(
        default="",
        description=(
            "Comma-separated full topic names a request may name in reply_to; "
            "anything else is answered on the responses topic."
        ),
    )

    @model_validator(mode="after")
    def _coherent_security(self) -> Self:
        check_kafka_security(self)
        return self

    @model_validator(mode="after")
    def _coherent_timeouts(self) -> Self:
        least = self.session_timeout_s + REBALANCE_BELOW_REQUEST_S
        if self.request_timeout_s < least:
            # The group would drop a worker whose requests are still allowed to wait.
            raise ValueError(
                f"KAFKA_REQUEST_TIMEOUT_S={self.request_timeout_s:g} is below "
                f"KAFKA_SESSION_TIMEOUT_S={self.session_timeout_s:g} + "
                f"{REBALANCE_BELOW_REQUEST_S:g}: raise it to at least {least:g}"
            )
        return self

    @property
    def rebalance_timeout_s(self) -> float:
        """How long the group waits for its members to rejoin during a rebalance."""
        return self.request_timeout_s - REBALANCE_BELOW_REQUEST_S

    @property
    def reply_to_topics(self) -> frozenset[str]:
        """The allowlisted reply-to topics."""
        return frozenset(t.strip() for t in self.reply_to_allowlist.split(",") if t.strip())

    @property
    def broker_url(self) -> str:
        """The bootstrap servers as faust's ``kafka://`` URL list."""
        return ";".join(f"kafka://{server.strip()}" for server in self.bootstrap_servers.split(","))

    def topic(self, name: str) -> str:
        """The full name of a declared topic on this cluster."""
        return f"{self.topic_prefix}{name}"


class ClickHouseSettings(TlsClientFiles):
    """Where results are persisted: embedded chDB on disk, or a server by URL.

    The ``tls_*`` settings apply to an ``https://`` URL; embedded chDB has no network
    transport and ignores them.
    """

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
    insert_interval_ms: float = Field(
        default=200.0,
        ge=0,
        le=60_000,
        description=(
            "Least time between the starts of two inserts while responses are published "
            "first (WORKER_RESPOND_FIRST): the rows of every batch answered meanwhile go in "
            "one insert. Longer: fewer, larger inserts and later commits; 0: insert as soon "
            "as the previous insert is done."
        ),
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


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ClickHouseHttpSettings(SecretSettings):
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
    tls_cert: ExistingFile = Field(
        default=None,
        description="PEM certificate (chain) to serve HTTPS with; unset = plain HTTP.",
    )
    tls_key: ExistingFile = Field(
        default=None, description="Private key of the certificate, if not in that file."
    )
    tls_ca_cert: ExistingFile = Field(
        default=None,
        description="CA that signed tls_cert, for the worker's own tools (worker db query) "
        "to verify the endpoint; the system CAs otherwise.",
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
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("CLICKHOUSE_HTTP_TLS_KEY needs CLICKHOUSE_HTTP_TLS_CERT")
        return self


class RedisSettings(TlsClientFiles):
    """The Redis server used by the API layer.

    ``rediss://`` URLs use TLS, with the server certificate verified against the
    system's CAs or ``tls_ca_cert``; ``username``/``password`` log in as a Redis
    ACL user (or put them in the URL, not both). Every Redis client of the worker
    is built from these by ``worker.connections.redis``.
    """

    model_config = SettingsConfigDict(env_prefix="REDIS_", frozen=True, extra="ignore")

    url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="redis:// or rediss:// (TLS) URL; or REDIS_URL_FILE, a file holding it.",
    )
    username: str | None = Field(default=None, description="Redis ACL user.")
    password: SecretStr | None = Field(
        default=None, description="Password of the ACL user; or REDIS_PASSWORD_FILE."
    )
    key_prefix: str = "rw:"
    socket_timeout_s: float = Field(default=2.0, gt=0)
    tls_verify: bool = Field(default=True, description="Verify the server certificate.")
    tls_check_hostname: bool = Field(
        default=True, description="Check that the certificate names the host connected to."
    )

    @property
    def tls(self) -> bool:
        """True for a ``rediss://`` URL."""
        return urlsplit(self.url.get_secret_value()).scheme == "rediss"

    def describe(self) -> str:
        """A printable location, without credentials."""
        parts = urlsplit(self.url.get_secret_value())
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"

    @model_validator(mode="after")
    def _coherent_security(self) -> Self:
        check_redis_security(self)
        return self


class LimitsSettings(BaseSettings):
    """What a request may be before it is parsed, and the default rate limits."""

    model_config = SettingsConfigDict(env_prefix="LIMITS_", frozen=True, extra="ignore")

    max_message_bytes: int = Field(default=256 * 1024, gt=0)
    max_json_depth: int = Field(default=32, gt=0)
    max_string_length: int = Field(
        default=128 * 1024, gt=0, description="Characters in any one JSON string (keys too)."
    )
    max_array_length: int = Field(default=1000, gt=0, description="Items in any one JSON array.")
    rate_per_second: float = Field(default=5000.0, gt=0, description="Tokens per tenant per s.")
    rate_burst: int = Field(default=10000, gt=0, description="Bucket size per tenant.")
    plans_file: Path | None = Field(
        default=None,
        description="TOML file of rate-limit plans and tenants (see docs/security.md).",
    )
    on_redis_unavailable: Literal["allow", "reject"] = Field(
        default="allow",
        description="allow: serve unlimited while Redis is down; reject: stall and retry.",
    )


AuthMode = Literal["hmac", "jwt", "none"]


class SecuritySettings(SecretSettings):
    """Authentication, secrets at rest and replay protection.

    The master key encrypts the HMAC secrets stored in Redis, and a key derived
    from it the sensitive fields operations store encrypted in ClickHouse
    (``worker.operations.encryption``). It comes from
    ``SECURITY_MASTER_KEY`` (urlsafe base64 of 32 bytes) or from the file named
    by ``SECURITY_MASTER_KEY_FILE``; it is a ``SecretStr`` and never logged.
    """

    model_config = SettingsConfigDict(env_prefix="SECURITY_", frozen=True, extra="ignore")

    auth_modes: str = Field(
        default="hmac",
        description="Comma-separated: hmac, jwt, none (none = anonymous, development only).",
    )
    master_key: SecretStr | None = None
    master_key_file: Path | None = None
    clock_skew_s: float = Field(
        default=900.0, gt=0, description="How far a signed timestamp may be from the worker's."
    )
    credential_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long a looked-up credential is trusted: the bound on revocation.",
    )
    rotation_grace_s: float = Field(
        default=86400.0, ge=0, description="How long a rotated-out secret stays valid."
    )
    idempotency_ttl_s: int = Field(
        default=86400,
        ge=0,
        description="How long answers are kept for replays; 0 turns replay protection off.",
    )
    jwt_jwks_file: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_algorithms: str = Field(default="RS256,ES256", description="Comma-separated, pinned.")
    jwt_tenant_claim: str = "tenant"
    jwt_leeway_s: float = Field(default=30.0, ge=0)

    @property
    def modes(self) -> tuple[AuthMode, ...]:
        """The configured authentication modes, in order, validated."""
        modes: list[AuthMode] = []
        for raw in self.auth_modes.split(","):
            mode = raw.strip().lower()
            if not mode:
                continue
            if mode not in ("hmac", "jwt", "none"):
                raise ConfigurationError(f"SECURITY_AUTH_MODES: unknown mode {mode!r}")
            modes.append(mode)  # type: ignore[arg-type]
        if not modes:
            raise ConfigurationError("SECURITY_AUTH_MODES is empty; use 'none' for anonymous")
        return tuple(modes)

    @property
    def anonymous(self) -> bool:
        """True when ``none`` is the only mode: every request is trusted as it claims."""
        return self.modes == ("none",)

    @property
    def jwt_algorithm_list(self) -> list[str]:
        return [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]

    def master_key_bytes(self) -> bytes:
        """The 32-byte master key, from the variable or the file. Raises if neither is usable."""
        if self.master_key is not None:
            encoded = self.master_key.get_secret_value()
            source = "SECURITY_MASTER_KEY"
        elif self.master_key_file is not None:
            try:
                encoded = self.master_key_file.expanduser().read_text(encoding="ascii")
            except OSError as exc:
                raise ConfigurationError(
                    f"SECURITY_MASTER_KEY_FILE {self.master_key_file} is not readable: "
                    f"{exc.strerror}"
                ) from exc
            source = "SECURITY_MASTER_KEY_FILE"
        else:
            raise ConfigurationError(
                "no master key: set SECURITY_MASTER_KEY or SECURITY_MASTER_KEY_FILE "
                "(`worker keys master-key` prints a new one)"
            )
        try:
            key = base64.urlsafe_b64decode(encoded.strip().encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            key = b""
        if len(key) != 32:
            # Never echo the value: it is (or was meant to be) a secret.
            raise ConfigurationError(f"{source} must be urlsafe base64 of 32 bytes")
        return key


class WorkerSettings(BaseSettings):
    """The worker process itself: identity, batching, files, web endpoints."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", frozen=True, extra="ignore")

    app_id: str = "request-worker"
    data_dir: Path = Path(".data")
    topics_file: Path = Path("topics/topics.toml")
    batch_max: int = Field(default=1000, gt=0, le=100_000)
    stream_buffer_max: int | None = Field(
        default=None,
        gt=0,
        description="Events Faust holds ahead of the agent before it stops fetching "
        "(backpressure); default max(4096, 2 * batch_max).",
    )
    gc_young_threshold: int = Field(
        default=10_000,
        ge=0,
        description=(
            "Net allocations between collections of the cycle collector's young generation "
            "(CPython's default is 700; 0 keeps CPython's thresholds). Objects alive after "
            "start-up are frozen out of its view either way. 10,000, 50,000 and 200,000 "
            "measured the same peak RSS, and throughput within the noise of single runs; "
            "see docs/performance.md."
        ),
    )
    respond_first: bool = Field(
        default=True,
        description=(
            "Publish a batch's responses as soon as it is processed, and insert its rows "
            "beside that; the batch is acknowledged once both are confirmed (far lower "
            "latency, see docs/performance.md). false: publish only after ClickHouse "
            "confirmed the rows, so a response never precedes its row, and every response "
            "waits for an insert."
        ),
    )
    unstored_max: int | None = Field(
        default=None,
        gt=0,
        description=(
            "Most requests answered whose rows ClickHouse has not confirmed yet; the worker "
            "answers no more until they are stored. Default 4 * batch_max."
        ),
    )
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_stats: bool = Field(
        default=False,
        description="Serve Faust's monitor statistics (read and committed offsets per "
        "partition, ...) as JSON at / on the web server, for debugging.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description="The event loop Faust runs on: uvloop (libuv; faster sockets and "
        "scheduling) or the standard library's.",
    )
    create_topics: bool = Field(
        default=False, description="Create missing declared topics at start-up instead of failing."
    )
    # Five minutes: outlasts restarts and short outages of ClickHouse or Redis, which
    # should stall consumption, not fill the dead-letter topic.
    retry_budget_s: float = Field(
        default=300.0,
        ge=0,
        description=(
            "How long a batch's server error is retried before its requests are dead-lettered "
            "with the error's code; 0 retries forever."
        ),
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

    @property
    def unstored(self) -> int:
        """How many requests may be answered before ClickHouse confirmed their rows."""
        return self.unstored_max or 4 * self.batch_max

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
    ``failing_operations`` names operations whose every call fails, as one whose
    own backend is unreachable would.
    """

    model_config = SettingsConfigDict(env_prefix="WORKER_FAULT_", frozen=True, extra="ignore")

    point: FaultPoint | None = None
    after_batches: int = Field(default=0, ge=0)
    clickhouse_down_file: Path | None = None
    failing_operations: str = Field(
        default="",
        description="Comma-separated operation names whose every call raises (service_failed).",
    )

    @property
    def failing_operation_names(self) -> frozenset[str]:
        return frozenset(n.strip() for n in self.failing_operations.split(",") if n.strip())

    clickhouse_insert_delay_s: float = Field(
        default=0.0,
        ge=0,
        description="Every ClickHouse insert waits this long first, on the sink's thread, "
        "as a slow server would: rows stay buffered.",
    )


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

    __slots__ = (
        "cache",
        "clickhouse",
        "clickhouse_http",
        "faults",
        "kafka",
        "limits",
        "redis",
        "security",
        "worker",
    )

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        clickhouse: ClickHouseSettings,
        redis: RedisSettings,
        limits: LimitsSettings,
        security: SecuritySettings,
        worker: WorkerSettings,
        cache: CacheSettings,
        clickhouse_http: ClickHouseHttpSettings | None = None,
        faults: FaultSettings | None = None,
    ) -> None:
        self.kafka = kafka
        self.clickhouse = clickhouse
        # Omitted (tests, tools that serve no analysts): the documented defaults,
        # without reading the environment.
        self.clickhouse_http = clickhouse_http or ClickHouseHttpSettings.model_construct()
        self.redis = redis
        self.limits = limits
        self.security = security
        self.worker = worker
        self.cache = cache
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
            # A rule across fields (loc empty) names its variables in its message.
            field = "_".join(str(part) for part in error["loc"]).upper() or "*"
            message = error["msg"].removeprefix("Value error, ")
            errors.append({"variable": f"{prefix}{field}", "message": message})
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
        security=_read(SecuritySettings, errors),
        worker=_read(WorkerSettings, errors),
        clickhouse_http=_read(ClickHouseHttpSettings, errors),
        cache=_read(CacheSettings, errors),
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
