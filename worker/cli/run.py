"""``worker run``: check topics, migrate ClickHouse, then consume until stopped."""

from __future__ import annotations

import asyncio
import logging
import sys

import click
import uvloop

from worker.connections import kafka_uvloop
from worker.settings import Settings, load_settings

log = logging.getLogger("worker.run")


async def prepare(settings: Settings) -> None:
    """What must hold before the first request is consumed."""
    from worker.kafka_admin import ensure_reply_topics, ensure_topics
    from worker.topology import load_topology

    topology = load_topology(settings.worker.topics_file)
    await ensure_topics(settings.kafka, topology, create=settings.worker.create_topics)
    await ensure_reply_topics(settings.kafka)


@click.command()
def run() -> None:
    """Run the worker in the foreground until SIGTERM or Ctrl-C.

    On SIGTERM it stops consuming, finishes the batch in flight (rows to
    ClickHouse, responses to Kafka), commits and exits 0, within
    WORKER_SHUTDOWN_TIMEOUT_S (exit 3 past it). Metrics and health are served on
    WORKER_WEB_HOST:WORKER_WEB_PORT (/metrics, /health/live, /health/ready).
    """
    from worker import collector
    from worker.app import build_app
    from worker.observability.logs import configure_logging, secret_values
    from worker.shutdown import GracefulWorker

    settings = load_settings()
    # The event loop's thread holds the GIL nearly all the time under load. The sink's
    # thread (clickhouse-connect, then chDB, which releases the GIL while it works)
    # and Faust's consumer thread take it back after every blocking call, and each
    # time waited up to the default 5 ms switch interval: an INSERT of 13 ms took
    # 50 ms beside a busy loop. Waiting threads ask for the GIL rarely, so a short
    # interval costs the loop little.
    sys.setswitchinterval(0.0005)
    if settings.worker.event_loop == "uvloop":
        # Before anything creates a loop (Faust's app and mode cache the first one they
        # see, per thread): every loop from here on is libuv's.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        # uvloop raises where the standard loop ignores a write to a closed socket.
        kafka_uvloop.install()
    if "none" in settings.security.modes:
        click.secho(
            "worker: WARNING SECURITY_AUTH_MODES includes 'none': unsigned requests are trusted "
            "as the tenant they name, with every scope. Development only.",
            err=True,
            fg="yellow",
        )
    logging_config = configure_logging(
        level=settings.worker.log_level,
        fmt=settings.worker.log_format,
        secrets=secret_values(
            [
                settings.kafka,
                settings.clickhouse,
                settings.clickhouse_http,
                settings.redis,
                settings.limits,
                settings.security,
                settings.worker,
            ]
        ),
    )
    asyncio.run(prepare(settings))
    worker_app = build_app(settings)
    # Migrations run before Faust starts; the sink keeps the connection it opened.
    asyncio.run(worker_app.sink.start())
    if worker_app.endpoint is not None:
        worker_app.endpoint.bind()
    log.info(
        "consuming %s from %s, rows to %s; metrics and health on http://%s:%d; %s event loop",
        worker_app.topics.requests,
        settings.kafka.bootstrap_servers,
        settings.clickhouse.describe(),
        settings.worker.web_host,
        settings.worker.web_port,
        type(worker_app.faust.loop).__module__.split(".")[0],
    )
    worker = GracefulWorker(
        worker_app.faust,
        loglevel=settings.worker.log_level,
        quiet=True,
        # Faust sets up logging again when it starts: the same configuration, so its
        # records, aiokafka's and everyone else's come out as the worker's own.
        logging_config=logging_config,
        shutdown=worker_app.shutdown,
    )
    # Last, once start-up has made its long-lived objects: they leave the collector's view.
    collector.tune(settings.worker.gc_young_threshold)
    # Faust's terminal spinner, enabled at WARNING and above, sets the root logger to
    # DEBUG so that it can spin on every record: every library then formats a debug
    # record per message sent. A worker has no terminal to spin on.
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    worker_app.shutdown.finish()
