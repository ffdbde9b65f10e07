"""``worker run``: check topics, migrate ClickHouse, then consume until stopped."""

from __future__ import annotations

import asyncio
import logging

import click

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
    from worker.app import build_app
    from worker.observability.logs import configure_logging, secret_values
    from worker.shutdown import GracefulWorker

    settings = load_settings()
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
        "consuming %s from %s, rows to %s; metrics and health on http://%s:%d",
        worker_app.topics.requests,
        settings.kafka.bootstrap_servers,
        settings.clickhouse.describe(),
        settings.worker.web_host,
        settings.worker.web_port,
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
