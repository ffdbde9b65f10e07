"""``worker topics``: create the declared topics, or check a broker against them."""

from __future__ import annotations

import asyncio
import sys

import click

from worker.kafka_admin import TopicReport, check_topics, create_topics
from worker.settings import load_settings
from worker.topology import load_topology


def _print(reports: list[TopicReport]) -> None:
    for report in reports:
        state = "created" if report.created else ("ok" if report.ok else "MISMATCH")
        detail = f" ({'; '.join(report.problems)})" if report.problems else ""
        click.echo(f"{state:9} {report.name}{detail}")


@click.group()
def topics() -> None:
    """Topic declarations (topics/topics.toml) against a broker."""


@topics.command()
def create() -> None:
    """Create every declared topic that is missing; report on all."""
    from rich.console import Console

    settings = load_settings()
    topology = load_topology(settings.worker.topics_file)
    with Console(stderr=True).status(f"creating topics on {settings.kafka.bootstrap_servers}..."):
        reports = asyncio.run(create_topics(settings.kafka, topology))
    _print(reports)
    if not all(report.ok for report in reports):
        sys.exit(1)


@topics.command()
def check() -> None:
    """Verify partitions, replication and config of every declared topic (exit 1 on mismatch)."""
    from rich.console import Console

    settings = load_settings()
    topology = load_topology(settings.worker.topics_file)
    with Console(stderr=True).status(f"checking topics on {settings.kafka.bootstrap_servers}..."):
        reports = asyncio.run(check_topics(settings.kafka, topology))
    _print(reports)
    if not all(report.ok for report in reports):
        sys.exit(1)
