"""The operator endpoints on Faust's web server: ``/metrics`` and ``/health/*``.

Faust's web server (aiohttp, on ``WORKER_WEB_HOST:WORKER_WEB_PORT``) starts
before the consumer and runs on the worker's event loop, so these answer from
the first moments of start-up and a liveness answer proves the loop runs.
"""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from worker.observability.health import Health

METRICS_PATH = "/metrics"
LIVENESS_PATH = "/health/live"
READINESS_PATH = "/health/ready"

_JSON = "application/json"


def register_endpoints(app: Any, health: Health) -> None:
    """Add the metrics and health views to the Faust ``app``."""

    @app.page(METRICS_PATH)  # type: ignore[untyped-decorator]
    async def metrics(web: Any, request: Any) -> Any:
        """Prometheus metrics, text exposition format."""
        # As a header: aiohttp refuses a content_type argument that carries a charset.
        return web.bytes(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page(LIVENESS_PATH)  # type: ignore[untyped-decorator]
    async def live(web: Any, request: Any) -> Any:
        """200 while the event loop answers."""
        return web.bytes(orjson.dumps(health.liveness()), content_type=_JSON)

    @app.page(READINESS_PATH)  # type: ignore[untyped-decorator]
    async def ready(web: Any, request: Any) -> Any:
        """200 when ready (or degraded), 503 when not; the checks in the body."""
        is_ready, report = health.readiness()
        return web.bytes(orjson.dumps(report), content_type=_JSON, status=200 if is_ready else 503)
