"""``worker load``: publish sample requests at a steady rate, to watch the worker work."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import click
from aiokafka import AIOKafkaProducer

from worker.connections.kafka import client_options
from worker.loadgen import SampleRequest, workload
from worker.settings import KafkaSettings, load_settings

#: How often the sender tops up to the target rate.
_TICK_S = 0.05


async def send_at_rate(
    settings: KafkaSettings,
    topic: str,
    requests: list[SampleRequest],
    *,
    rate: float | None,
    on_acked: Callable[[int], None],
) -> float:
    """Publish ``requests`` at ``rate`` per second (None: as fast as possible); the seconds taken.

    The sender tops up every tick to where the rate says it should be, so a
    slow tick is made up by the next one instead of lowering the rate.
    """
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        linger_ms=5,
        client_id="request-worker-load",
    )
    await producer.start()
    started = time.monotonic()
    try:
        futures = []
        sent = 0
        while sent < len(requests):
            due = len(requests) if rate is None else int((time.monotonic() - started) * rate) + 1
            for request in requests[sent : min(due, len(requests))]:
                future = await producer.send(topic, request.value, key=request.key)
                future.add_done_callback(lambda done: on_acked(1))
                futures.append(future)
            sent = len(futures)
            if sent < len(requests):
                await asyncio.sleep(_TICK_S)
        for future in futures:
            await future
    finally:
        await producer.stop()
    return time.monotonic() - started


@click.command()
@click.option(
    "--count", type=click.IntRange(min=1), default=1000, show_default=True, help="Requests to send."
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Requests per second (default: as fast as the broker takes them).",
)
@click.option(
    "--invalid",
    type=click.FloatRange(min=0, max=1),
    default=0.0,
    show_default=True,
    help="Share of broken requests (every kind of reject in turn), e.g. 0.05.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the sample data.")
def load(count: int, rate: float | None, invalid: float, seed: int) -> None:
    """Publish sample requests (price.quote, text.stats, broken ones) to the requests topic.

    A progress bar follows the broker's acknowledgements. Request ids are
    unique per run (load-<random>-<n>), so runs never collide.
    """
    from rich.console import Console
    from rich.progress import Progress

    from worker.app import TopicNames
    from worker.topology import load_topology

    settings = load_settings()
    topic = TopicNames.resolve(settings, load_topology(settings.worker.topics_file)).requests
    broken = round(count * invalid)
    requests = workload(count - broken, broken, seed=seed, run_id=f"load-{uuid.uuid4().hex[:6]}")
    console = Console(stderr=True)
    with Progress(console=console) as progress:
        task = progress.add_task(f"publishing to {topic}", total=len(requests))
        seconds = asyncio.run(
            send_at_rate(
                settings.kafka,
                topic,
                requests,
                rate=rate,
                on_acked=lambda n: progress.advance(task, n),
            )
        )
    click.echo(
        f"published {len(requests)} requests ({broken} broken) to {topic} in {seconds:.1f}s "
        f"({len(requests) / max(seconds, 1e-9):.0f}/s)"
    )
