"""Builds the Faust app and the request flow from settings and the topic declarations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.agents import register_agents
from worker.cache.runtime import CacheRuntime, CacheTopics
from worker.cache.service import ResultCache
from worker.cache.warming import ClickHouseHotKeys
from worker.clickhouse.client import connect
from worker.flow.cache import CacheLookupStage, CacheStoreStage
from worker.flow.decode import DecodeStage
from worker.flow.deliver import BatchHandler
from worker.flow.pipeline import Pipeline
from worker.flow.process import ProcessStage
from worker.flow.ratelimit import RateLimitStage
from worker.flow.respond import Responder
from worker.flow.validate import ValidateStage
from worker.intake import BatchApp, BatchFeed
from worker.operations.registry import OperationRegistry, default_registry
from worker.publish.kafka import KafkaPublisher
from worker.ratelimit.base import RateLimiter
from worker.ratelimit.redis import RedisRateLimiter
from worker.reference.tables import ReferenceTables, TableCatalog
from worker.settings import Settings
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


def build_pipeline(
    settings: Settings,
    topics: TopicNames,
    registry: OperationRegistry,
    *,
    limiter: RateLimiter,
    cache: ResultCache | None = None,
) -> Pipeline:
    """The request flow, stage by stage, in the order a request meets them.

    Without a ``cache`` every request is processed (``meta.cache: "bypass"``).
    """
    cached = cache is not None and settings.cache.enabled
    return Pipeline(
        stages=[
            DecodeStage(settings.limits),
            ValidateStage(registry),
            RateLimitStage(limiter, settings.limits.on_redis_unavailable),
            *([CacheLookupStage(cache)] if cached and cache is not None else []),
            ProcessStage(),
            *([CacheStoreStage(cache)] if cached and cache is not None else []),
        ],
        responder=Responder(
            responses_topic=topics.responses, dead_letter_topic=topics.dead_letters
        ),
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
    #: The result cache on Faust tables; ``cache.warmed`` is set once warming is done.
    cache: CacheRuntime
    #: Products and rates, global tables fed from the reference topics.
    reference: ReferenceTables


def build_app(settings: Settings, registry: OperationRegistry | None = None) -> WorkerApp:
    """Create the Faust app, its ports and its agents. Nothing connects yet."""
    topology = load_topology(settings.worker.topics_file)
    topics = TopicNames.resolve(settings, topology)
    data_dir = settings.worker.data_dir
    # Faust creates only the last level of its datadir.
    data_dir.mkdir(parents=True, exist_ok=True)
    app = BatchApp(
        settings.worker.app_id,
        batch_feed=BatchFeed([topics.requests]),
        broker=settings.kafka.broker_url,
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
        broker_heartbeat_interval=min(3.0, settings.kafka.session_timeout_s / 5),
        producer_linger_ms=5,
        producer_acks=-1,
        stream_buffer_maxsize=max(4096, settings.worker.batch_max * 2),
        web_enabled=True,
        web_bind=settings.worker.web_host,
        web_port=settings.worker.web_port,
        web_host=settings.worker.web_host,
    )
    sink = ClickHouseSink(lambda: connect(settings.clickhouse), settings.clickhouse.database)
    limiter = RedisRateLimiter(
        settings.redis, settings.limits.rate_per_second, settings.limits.rate_burst
    )
    budget = MemoryBudget(settings.cache)
    reference = ReferenceTables(
        app,
        products=_declared(settings, topology, "reference_products"),
        rates=_declared(settings, topology, "reference_rates"),
        budget=budget,
    )
    registry = registry or default_registry(TableCatalog(reference))
    cache = CacheRuntime(app, settings.cache, CacheTopics.resolve(settings, topology), budget)
    cache.register(registry, ClickHouseHotKeys(sink.query, settings.clickhouse.database), reference)
    handler = BatchHandler(
        build_pipeline(settings, topics, registry, limiter=limiter, cache=cache.cache),
        sink,
        KafkaPublisher(app.producer),
    )
    worker_app = WorkerApp(
        settings, topology, topics, app, handler, sink, limiter, cache, reference
    )
    register_agents(worker_app)
    return worker_app


def _declared(settings: Settings, topology: Topology, role: Role) -> tuple[str, int]:
    spec = topology.by_role(role)
    return settings.kafka.topic(spec.name), spec.partitions
