"""``worker dlq``: inspect the dead-letter topic and replay what a filter selects."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from worker.deadletters import (
    DeadLetter,
    DeadLetterFilter,
    parse_time,
    publish,
    read_dead_letters,
    replay_message,
)
from worker.settings import Settings, load_settings


def _filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--reason",
            "reasons",
            multiple=True,
            metavar="CODE",
            help="Only this dlq-reason (an error code, e.g. validation_failed); repeatable.",
        ),
        click.option(
            "--tenant",
            "tenants",
            multiple=True,
            help="Only requests of this tenant (read from the original JSON); repeatable.",
        ),
        click.option(
            "--since",
            metavar="TIME",
            help="Dead-lettered at or after TIME: ISO 8601 (UTC if no offset), or 30m, 2h, 7d ago.",
        ),
        click.option(
            "--until",
            metavar="TIME",
            help="Dead-lettered before TIME (same forms as --since).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _make_filter(
    reasons: tuple[str, ...], tenants: tuple[str, ...], since: str | None, until: str | None
) -> DeadLetterFilter:
    now = datetime.now(UTC)
    return DeadLetterFilter(
        reasons=frozenset(reasons),
        tenants=frozenset(tenants),
        since=parse_time(since, now) if since else None,
        until=parse_time(until, now) if until else None,
    )


def _topics(settings: Settings) -> tuple[str, str]:
    from worker.app import TopicNames
    from worker.topology import load_topology

    names = TopicNames.resolve(settings, load_topology(settings.worker.topics_file))
    return names.dead_letters, names.requests


def _select(settings: Settings, topic: str, selection: DeadLetterFilter) -> list[DeadLetter]:
    """Read the topic with a progress bar (on stderr) and keep what the filter selects."""
    from rich.console import Console
    from rich.progress import Progress

    async def scan(progress: Progress) -> list[DeadLetter]:
        task = progress.add_task(f"reading {topic}", total=None)
        return [
            letter
            async for letter in read_dead_letters(
                settings.kafka,
                topic,
                since=selection.since,
                on_total=lambda total: progress.update(task, total=total),
                on_read=lambda count: progress.advance(task, count),
            )
            if selection.matches(letter)
        ]

    with Progress(console=Console(stderr=True), transient=True) as progress:
        return asyncio.run(scan(progress))


@click.group()
def dlq() -> None:
    """The dead-letter topic: what the worker could not understand, with the reason.

    Filters (all of them must hold): --reason, --tenant, --since, --until.
    """


@dlq.command()
@_filter_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table: for people; json: one dead letter per line, with value and headers.",
)
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0 = all.")
def inspect(
    *,
    reasons: tuple[str, ...],
    tenants: tuple[str, ...],
    since: str | None,
    until: str | None,
    fmt: str,
    limit: int,
) -> None:
    """List the dead letters the filter selects, and count them by reason and tenant."""
    from rich.console import Console
    from rich.table import Table

    settings = load_settings()
    topic, _ = _topics(settings)
    selection = _make_filter(reasons, tenants, since, until)
    letters = _select(settings, topic, selection)
    shown = letters if limit == 0 else letters[:limit]
    if fmt == "json":
        for letter in shown:
            sys.stdout.write(orjson.dumps(letter.as_dict()).decode() + "\n")
        return
    console = Console()
    table = Table("position", "time", "reason", "tenant", "request id", "message", title=topic)
    for letter in shown:
        table.add_row(
            letter.position,
            letter.time.isoformat(timespec="seconds"),
            letter.reason,
            letter.tenant or "",
            letter.request_id or "",
            letter.message[:80],
        )
    console.print(table)
    counts = Counter((letter.reason, letter.tenant or "") for letter in letters)
    summary = Table("reason", "tenant", "dead letters", title="matching, by reason and tenant")
    for (reason, tenant), count in sorted(counts.items()):
        summary.add_row(reason, tenant, str(count))
    console.print(summary)
    console.print(f"{len(letters)} dead letters match ({selection.describe()}); {len(shown)} shown")


@dlq.command()
@_filter_options
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; publish nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def replay(
    *,
    reasons: tuple[str, ...],
    tenants: tuple[str, ...],
    since: str | None,
    until: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Publish the selected dead letters to the requests topic again.

    Each keeps its key, value and original headers; its dlq-* headers are
    removed and replayed-from (topic:partition:offset) and replayed-at are
    added. Replay after fixing the cause (a limit raised, a producer fixed):
    a message that fails again is dead-lettered again. Running a replay twice
    publishes the messages twice.
    """
    from rich.console import Console
    from rich.progress import Progress

    settings = load_settings()
    topic, requests_topic = _topics(settings)
    selection = _make_filter(reasons, tenants, since, until)
    letters = _select(settings, topic, selection)
    console = Console(stderr=True)
    by_reason = Counter(letter.reason for letter in letters)
    detail = ", ".join(f"{count} {reason}" for reason, count in sorted(by_reason.items()))
    console.print(
        f"{len(letters)} dead letters match ({selection.describe()})"
        + (f": {detail}" if detail else "")
    )
    if not letters:
        return
    if dry_run:
        for letter in letters:
            click.echo(f"{letter.position} {letter.reason} {letter.tenant or '-'}")
        console.print(f"dry run: would replay {len(letters)} to {requests_topic}")
        return
    if not yes:
        click.confirm(f"Replay {len(letters)} messages to {requests_topic}?", abort=True)
    now = datetime.now(UTC)
    messages = [replay_message(letter, requests_topic, now) for letter in letters]
    with Progress(console=console) as progress:
        task = progress.add_task(f"replaying to {requests_topic}", total=len(messages))
        asyncio.run(publish(settings.kafka, messages, on_sent=lambda n: progress.advance(task, n)))
    click.echo(f"replayed {len(messages)} messages to {requests_topic}")
