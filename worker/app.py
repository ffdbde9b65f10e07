"""Builds the Faust app and the request flow from settings and the topic declarations."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from worker.agents import register_agents
from worker.auth.authenticators import Authenticator, HmacAuthenticator, JwtAuthenticator
from worker.auth.bearer import JwtVerifier
from worker.auth.cache import CredentialCache
from worker.auth.credentials.base import CredentialStore
from worker.auth.credentials.redis import RedisCredentialStore
from worker.auth.secrets import SecretBox
from worker.cache.runtime import CacheRuntime, CacheTopics
from worker.cache.service import ResultCache
from worker.cache.warming import ClickHouseHotKeys
from worker.clickhouse.client import connect
from worker.clickhouse.endpoint.chdb_backend import ChdbBackend
from worker.clickhouse.endpoint.service import ClickHouseEndpoint
from worker.clickhouse.latency import with_insert_delay
from worker.connections.kafka import faust_credentials
from worker.errors import ConfigurationError
from worker.faults import FaultInjector
from worker.flow.authenticate import AuthenticateStage
from worker.flow.authorize import AuthorizeStage
from worker.flow.cache import CacheLookupStage, CacheStoreStage
from worker.flow.decode import DecodeStage
from worker.flow.deliver import BatchHandler
from worker.flow.idempotency import RememberStage, ReplayStage
from worker.flow.observer import FlowObserver
from worker.flow.pipeline import Pipeline
from worker.flow.process import ProcessStage
from worker.flow.ratelimit import RateLimitStage
from worker.flow.respond import Responder
from worker.flow.stage import Stage
from worker.flow.validate import ValidateStage
from worker.idempotency.base import OutcomeStore
from worker.idempotency.redis import RedisOutcomeStore
from worker.intake import BatchApp, BatchFeed
from worker.observability.health import Health
from worker.observability.install import install_observability
from worker.observability.partitions import PartitionTracker
from worker.observability.recorder import MetricsRecorder
from worker.observability.sensors import CommitMonitor
from worker.operations.encryption import FieldCipher
from worker.operations.registry import OperationRegistry, default_registry
from worker.operations.storage import RowValues
from worker.publish.batches import of_faust
from worker.publish.kafka import KafkaPublisher
from worker.ratelimit.base import RateLimiter
from worker.ratelimit.plans import RatePlans
from worker.ratelimit.redis import RedisRateLimiter
from worker.reference.tables import ReferenceTables, TableCatalog
from worker.settings import Settings
from worker.shutdown import Shutdown
from worker.sinks.clickhouse import ClickHouseSink
from worker.state.rocksdb import MemoryBudget
from worker.topology import Role, Topology, load_topology


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The full names of the topics the flow uses, prefix applied."""

    requests: str
    responses: str
    dead_letters: str

    @classmethod
    def resolve(cls, settings: Settings, topology: Topology) -> TopicNames:
        name = settings.kafka.topic
        return cls(
            requests=name(topology.by_role("requests").name),
            responses=name(topology.by_role("responses").name),
            dead_letters=name(topology.by_role("dead_letters").name),
        )


log = logging.getLogger(__name__)


def build_authenticators(
    settings: Settings, credentials: CredentialStore | None
) -> list[Authenticator]:
    """The configured authentication schemes, in ``SECURITY_AUTH_MODES`` order."""
    security = settings.security
    found: list[Authenticator] = []
    for mode in security.modes:
        if mode == "hmac":
            if credentials is None:
                raise ConfigurationError("hmac authentication needs a credential store")
            cache = CredentialCache(
                credentials, SecretBox(security.master_key_bytes()), security.credential_cache_ttl_s
            )
            found.append(HmacAuthenticator(cache, clock_skew_s=security.clock_skew_s))
        elif mode == "jwt":
            found.append(JwtAuthenticator(JwtVerifier.from_settings(security)))
    return found


def build_pipeline(
    settings: Settings,
    topics: TopicNames,
    registry: OperationRegistry,
    *,
    limiter: RateLimiter,
    credentials: CredentialStore | None = None,
    outcomes: OutcomeStore | None = None,
    observer: FlowObserver | None = None,
    cache: ResultCache | None = None,
) -> Pipeline:
    """The request flow, stage by stage, in the order a request meets them.

    Without a ``cache`` every request is processed (``meta.cache: "bypass"``).
    """
    security = settings.security
    if "none" in security.modes:
        log.warning(
            "SECURITY_AUTH_MODES includes 'none': unsigned requests are trusted as the tenant "
            "they name, with every scope. Never run this in production."
        )
    replay: list[Stage] = []
    remember: list[Stage] = []
    if security.idempotency_ttl_s > 0:
        if outcomes is None:
            raise ConfigurationError("replay protection needs an outcome store")
        replay = [ReplayStage(outcomes)]
        remember = [RememberStage(outcomes, security.idempotency_ttl_s)]
    lookup: list[Stage] = []
    store: list[Stage] = []
    if cache is not None and settings.cache.enabled:
        lookup = [CacheLookupStage(cache)]
        store = [CacheStoreStage(cache)]
    return Pipeline(
        stages=[
            AuthenticateStage(
                build_authenticators(settings, credentials),
                allow_anonymous="none" in security.modes,
                max_message_bytes=settings.limits.max_message_bytes,
            ),
            DecodeStage(settings.limits),
            ValidateStage(registry),
            AuthorizeStage(),
            *replay,
            RateLimitStage(
                limiter,
                RatePlans.from_settings(settings.limits),
                settings.limits.on_redis_unavailable,
            ),
            *lookup,
            ProcessStage(),
            *store,
            *remember,
        ],
        responder=Responder(
            responses_topic=topics.responses,
            dead_letter_topic=topics.dead_letters,
            reply_to_allowlist=settings.kafka.reply_to_topics,
            registry=registry,
            row_values=RowValues(FieldCipher.from_settings(security)),
        ),
        observer=observer,
    )


@dataclass(slots=True)
class WorkerApp:
    """The Faust app with everything the agents need."""

    settings: Settings
    topology: Topology
    topics: TopicNames
    faust: Any
    handler: BatchHandler
    sink: ClickHouseSink
    limiter: RedisRateLimiter
    faults: FaultInjector
    health: Health
    shutdown: Shutdown
    #: The result cache on Faust tables; ``cache.warmed`` is set once warming is done.
    cache: CacheRuntime
    #: Products and rates, global tables fed from the reference topics.
    reference: ReferenceTables
    # The read-only ClickHouse HTTP endpoint; embedded chDB only.
    endpoint: ClickHouseEndpoint | None = None


def build_app(settings: Settings, registry: OperationRegistry | None = None) -> WorkerApp:
    """Create the Faust app, its ports and its agents. Nothing connects yet."""
    topology = load_topology(settings.worker.topics_file)
    topics = TopicNames.resolve(settings, topology)
    data_dir = settings.worker.data_dir
    # Faust creates only the last level of its datadir.
    data_dir.mkdir(parents=True, exist_ok=True)
    tracker = PartitionTracker(topics.requests, settings.worker.stall_timeout_s)
    app = BatchApp(
        settings.worker.app_id,
        batch_feed=BatchFeed([topics.requests], max_records=settings.worker.batch_max),
        fetch_max_wait_ms=settings.kafka.fetch_max_wait_ms,
        broker=settings.kafka.broker_url,
        # TLS and SASL from KAFKA_*, exactly as every other client of the worker gets them.
        broker_credentials=faust_credentials(settings.kafka),
        datadir=str(data_dir / "faust"),
        # The cache and reference tables bring their own bounded RocksDB store (worker.state).
        store="rocksdb://",
        autodiscover=False,
        # Topics are declared in topics/ and created by `worker topics create`.
        topic_allow_declare=False,
        topic_disable_leader=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_compression_type=(
            None if settings.kafka.compression == "none" else settings.kafka.compression
        ),
        broker_session_timeout=settings.kafka.session_timeout_s,
        # Faust's default is 90 s: a request lost while the broker restarts kept the
        # consumer's metadata and group coordinator waiting that long.
        broker_request_timeout=settings.kafka.request_timeout_s,
        broker_rebalance_timeout=settings.kafka.rebalance_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.kafka.session_timeout_s / 5),
        producer_linger_ms=5,
        producer_acks=-1,
        # Answers and changelog records are produced as one record batch per
        # partition (worker.publish.batches); a batch of 1,000 answers is ~500 KB
        # before compression. Below the broker's 1 MB message.max.bytes.
        producer_max_batch_size=512 * 1024,
        # Backpressure: fetches no larger than a batch. One batch is being delivered,
        # the next one processed (or waiting to be delivered), the feed holds at most
        # a batch of records and the fetch loop one more fetch waiting to enter it:
        # at most four batches of records are in memory.
        broker_max_poll_records=settings.worker.batch_max,
        stream_buffer_maxsize=settings.worker.stream_buffer,
        web_enabled=True,
        web_bind=settings.worker.web_host,
        web_port=settings.worker.web_port,
        web_stats_enabled=settings.worker.web_stats,
        web_host=settings.worker.web_host,
        # Faust reports every commit to its monitor: the tracker learns of it there.
        monitor=CommitMonitor(tracker),
    )
    faults = FaultInjector(settings.faults)
    sink = ClickHouseSink(
        settings.clickhouse,
        faults.clickhouse(
            with_insert_delay(
                lambda: connect(settings.clickhouse),
                f"{settings.clickhouse.database}.requests",
                settings.faults.clickhouse_insert_delay_s,
            )
        ),
    )
    limiter = RedisRateLimiter(settings.redis)
    recorder = MetricsRecorder()
    recorder.prepare([topics.requests], [topics.responses, topics.dead_letters])
    budget = MemoryBudget(settings.cache)
    reference = ReferenceTables(
        app,
        products=_declared(settings, topology, "reference_products"),
        rates=_declared(settings, topology, "reference_rates"),
        budget=budget,
    )
    registry = faults.operations(registry or default_registry(TableCatalog(reference)))
    cache = CacheRuntime(app, settings.cache, CacheTopics.resolve(settings, topology), budget)
    cache.register(registry, ClickHouseHotKeys(sink.query, settings.clickhouse.database), reference)
    handler = BatchHandler(
        build_pipeline(
            settings,
            topics,
            registry,
            limiter=limiter,
            credentials=RedisCredentialStore(settings.redis),
            outcomes=RedisOutcomeStore(settings.redis),
            observer=recorder,
            cache=cache.cache,
        ),
        sink,
        KafkaPublisher(of_faust(app)),
        retry_budget_s=settings.worker.retry_budget_s,
        faults=faults,
        observer=recorder,
    )
    worker_app = WorkerApp(
        settings,
        topology,
        topics,
        app,
        handler,
        sink,
        limiter,
        faults,
        Health(tracker),
        Shutdown(settings.worker.shutdown_timeout_s),
        cache,
        reference,
        build_endpoint(settings),
    )
    if worker_app.endpoint is not None:
        app.add_dependency(worker_app.endpoint)
    register_agents(worker_app)
    install_observability(worker_app)
    return worker_app


def build_endpoint(settings: Settings) -> ClickHouseEndpoint | None:
    """The analyst endpoint over embedded chDB; none against a ClickHouse server."""
    if not (settings.clickhouse.embedded and settings.clickhouse_http.enabled):
        return None
    return ClickHouseEndpoint(
        settings.clickhouse_http,
        ChdbBackend(settings.clickhouse.path),
        database=settings.clickhouse.database,
        chdb_path=settings.clickhouse.path,
        data_dir=settings.worker.data_dir,
    )


def _declared(settings: Settings, topology: Topology, role: Role) -> tuple[str, int]:
    spec = topology.by_role(role)
    return settings.kafka.topic(spec.name), spec.partitions
