"""Wires metrics, health and the operator endpoints into a built worker app."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from worker.observability.health import HealthMonitor
from worker.observability.metrics import PARTITIONS
from worker.observability.partitions import StallChange
from worker.observability.probes import ClickHouseProbe, RedisProbe
from worker.observability.sensors import ConsumerOffsets, RebalanceSensor
from worker.observability.web import register_endpoints
from worker.shutdown import EXIT_STALLED

if TYPE_CHECKING:
    from worker.app import WorkerApp

log = logging.getLogger(__name__)


def install_observability(worker: WorkerApp) -> HealthMonitor:
    """Sensors, the health monitor task, ``/metrics`` and ``/health/*``; closing on stop."""
    app = worker.faust
    settings = worker.settings
    health = worker.health
    tracker = health.tracker
    recovery = health.gate("recovery")
    app.sensors.add(RebalanceSensor(tracker, recovery))
    PARTITIONS.bind(tracker)

    def on_stall(change: StallChange) -> None:
        if settings.worker.exit_on_stall:
            worker.shutdown.request(
                EXIT_STALLED,
                f"partition {change.topic}[{change.partition}] stalled and "
                "WORKER_EXIT_ON_STALL is set",
            )

    redis = RedisProbe(settings.redis, required=settings.limits.on_redis_unavailable == "reject")
    monitor = HealthMonitor(
        health,
        ConsumerOffsets(app, worker.topics.requests),
        [redis, ClickHouseProbe(worker.sink)],
        interval_s=settings.worker.health_interval_s,
        timeout_s=settings.worker.health_timeout_s,
        on_stall=on_stall,
        describe=app.consumer.group_state,
    )
    app.task(monitor.run)
    register_endpoints(app, health)

    def stopping() -> None:
        monitor.paused = True
        recovery.close("stopping")

    worker.shutdown.on_stopping(stopping)
    worker.shutdown.describe_with(app.consumer.group_state)

    @app.on_before_shutdown.connect  # type: ignore[untyped-decorator]
    async def _close(sender: Any, **kwargs: Any) -> None:
        # Faust sends this once the batches in flight were acknowledged and committed.
        await redis.close()
        await worker.limiter.close()
        await worker.sink.close()
        log.info("closed Redis and ClickHouse")

    return monitor
