"""``worker run``: check topics, migrate ClickHouse, then consume until stopped."""

from __future__ import annotations

import asyncio

import click

from worker.settings import Settings, load_settings


async def prepare(settings: Settings) -> None:
    """What must hold before the first request is consumed."""
    from worker.kafka_admin import ensure_reply_topics, ensure_topics
    from worker.topology import load_topology

    topology = load_topology(settings.worker.topics_file)
    await ensure_topics(settings.kafka, topology, create=settings.worker.create_topics)
    await ensure_reply_topics(settings.kafka)


@click.command()
def run() -> None:
    """Run the worker in the foreground (SIGTERM or Ctrl-C stops it gracefully)."""
    from faust.worker import Worker

    from worker.app import build_app

    settings = load_settings()
    if "none" in settings.security.modes:
        click.secho(
            "worker: WARNING SECURITY_AUTH_MODES includes 'none': unsigned requests are trusted "
            "as the tenant they name, with every scope. Development only.",
            err=True,
            fg="yellow",
        )
    asyncio.run(prepare(settings))
    worker_app = build_app(settings)
    # Migrations run before Faust starts; the sink keeps the connection it opened.
    asyncio.run(worker_app.sink.start())
    if worker_app.endpoint is not None:
        worker_app.endpoint.bind()
    click.echo(
        f"worker: consuming {worker_app.topics.requests} from {settings.kafka.bootstrap_servers}, "
        f"rows to {settings.clickhouse.describe()}",
        err=True,
    )
    worker = Worker(worker_app.faust, loglevel=settings.worker.log_level, quiet=True)
    # Faust's terminal spinner, enabled at WARNING and above, sets the root logger to
    # DEBUG so that it can spin on every record: every library then formats a debug
    # record per message sent. A worker has no terminal to spin on.
    worker.spinner = None
    worker.execute_from_commandline()
