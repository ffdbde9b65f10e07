"""``worker demo``: the whole flow once, on whatever services are configured."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable

import click
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from worker.app import TopicNames
from worker.auth.credentials.redis import RedisCredentialStore
from worker.auth.keys import KeyManager, KeyMaterial
from worker.auth.secrets import SecretBox, new_master_key
from worker.clickhouse.client import connect
from worker.connections.kafka import client_options
from worker.kafka_admin import create_topics
from worker.loadgen import TENANTS, SampleRequest, sign_samples, workload
from worker.operations.registry import default_registry
from worker.reference.publish import demo_reference_data, publish_reference
from worker.settings import Settings, load_settings
from worker.topology import load_topology


async def produce(settings: Settings, topic: str, requests: list[SampleRequest]) -> None:
    """Publish ``requests`` to ``topic`` and wait until the broker has them all."""
    producer = AIOKafkaProducer(**client_options(settings.kafka), linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, r.value, key=r.key, headers=list(r.headers))
            for r in requests
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def create_demo_keys(settings: Settings, tenants: tuple[str, ...]) -> dict[str, KeyMaterial]:
    """One API key per tenant with every scope, as an operator would create them."""
    store = RedisCredentialStore(settings.redis)
    try:
        manager = KeyManager(store, SecretBox(settings.security.master_key_bytes()))
        scopes = default_registry().scopes()
        return {
            tenant: (await manager.create(tenant, scopes, description="demo")).material()
            for tenant in tenants
        }
    finally:
        await store.close()


async def collect(
    settings: Settings,
    topics: list[str],
    *,
    want: int,
    timeout_s: float,
    progress: Progress,
    alive: Callable[[], bool] = lambda: True,
) -> list[tuple[str, bytes | None, bytes]]:
    """Read ``topics`` from the start until ``want`` records arrived or time ran out."""
    consumer = AIOKafkaConsumer(
        *topics,
        **client_options(settings.kafka),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    task = progress.add_task("responses", total=want)
    seen: list[tuple[str, bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < want and time.monotonic() < deadline and alive():
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                seen.extend((r.topic, r.key, r.value) for r in records)
            progress.update(task, completed=min(len(seen), want))
    finally:
        await consumer.stop()
    return seen


def _free_port() -> int:
    # Faust's web server needs a concrete port; 0 is refused by its settings.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@click.command()
@click.option("--valid", default=1000, show_default=True, help="Well-formed requests to send.")
@click.option("--invalid", default=100, show_default=True, help="Broken requests to send.")
@click.option(
    "--timeout",
    "timeout_s",
    default=120.0,
    show_default=True,
    help="Seconds to wait for every response and dead letter.",
)
def demo(valid: int, invalid: int, timeout_s: float) -> None:
    """Start a worker, publish sample requests, and show what reached Kafka and ClickHouse."""
    console = Console(stderr=True)
    run_id = f"demo{uuid.uuid4().hex[:6]}"
    # Fresh topics, consumer group and Redis keys per run; the worker's own logs
    # only when they matter.
    env = {
        **os.environ,
        "KAFKA_TOPIC_PREFIX": f"{run_id}.",
        "WORKER_APP_ID": run_id,
        "REDIS_KEY_PREFIX": f"{run_id}:",
    }
    env.setdefault("WORKER_LOG_LEVEL", "warning")
    # Its own ports, so that the demo also runs beside a worker already running here.
    env.setdefault("CLICKHOUSE_HTTP_PORT", "0")
    env.setdefault("WORKER_WEB_PORT", str(_free_port()))
    if "SECURITY_MASTER_KEY" not in env and "SECURITY_MASTER_KEY_FILE" not in env:
        # A throwaway master key: the demo's API keys live only as long as its Redis prefix.
        env["SECURITY_MASTER_KEY"] = new_master_key()
    env.setdefault("WORKER_LOG_FORMAT", "console")
    os.environ.update(env)
    settings = load_settings()
    topology = load_topology(settings.worker.topics_file)
    topics = TopicNames.resolve(settings, topology)
    asyncio.run(create_topics(settings.kafka, topology))
    console.print(f"topics: {topics.requests} -> {topics.responses} + {topics.dead_letters}")
    # The quote operation joins requests with the catalog: publish the one the samples use.
    seeded = asyncio.run(publish_reference(settings.kafka, topology, demo_reference_data()))
    console.print(f"reference data: {seeded} products and rates")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "run"], env=env, stdout=subprocess.DEVNULL
    )
    requests = workload(valid, invalid, run_id=run_id)
    if settings.security.anonymous:
        console.print("[yellow]SECURITY_AUTH_MODES=none: requests are sent unsigned[/yellow]")
    else:
        keys = asyncio.run(create_demo_keys(settings, TENANTS))
        requests = sign_samples(requests, keys)
        console.print(f"created one API key per tenant ({', '.join(TENANTS)}); requests signed")
    want = len(requests) + sum(r.dead_letter for r in requests)
    try:
        asyncio.run(produce(settings, topics.requests, requests))
        console.print(f"published {len(requests)} requests ({valid} valid, {invalid} broken)")
        with Progress(console=console) as progress:
            received = asyncio.run(
                collect(
                    settings,
                    [topics.responses, topics.dead_letters],
                    want=want,
                    timeout_s=timeout_s,
                    progress=progress,
                    alive=lambda: proc.poll() is None,
                )
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    responses = [value for topic, _, value in received if topic == topics.responses]
    dead_letters = len(received) - len(responses)
    _show_responses(console, topics, responses, dead_letters)
    _show_rows(console, settings, topics)
    if len(received) < want:
        console.print(f"[red]only {len(received)} of {want} messages arrived[/red]")
        sys.exit(1)


def _show_responses(
    console: Console, topics: TopicNames, responses: list[bytes], dead_letters: int
) -> None:
    statuses: Counter[tuple[str, str]] = Counter()
    examples: dict[str, bytes] = {}
    for value in responses:
        body = orjson.loads(value)
        statuses[(body["status"], (body["error"] or {}).get("code", ""))] += 1
        examples.setdefault(body["status"], value)
    table = Table("status", "code", "responses", title=topics.responses)
    for (status, code), count in sorted(statuses.items()):
        table.add_row(status, code, str(count))
    console.print(table)
    console.print(f"{topics.dead_letters}: {dead_letters} dead letters (original bytes + reason)")
    for status, value in sorted(examples.items(), reverse=True):
        console.print(f"an {status!r} response:")
        console.print_json(value.decode())


def _show_rows(console: Console, settings: Settings, topics: TopicNames) -> None:
    client = connect(settings.clickhouse)
    try:
        requests_table = f"{settings.clickhouse.database}.requests"  # a validated identifier
        result = client.query(
            f"SELECT status, error_code, count() FROM {requests_table} "  # noqa: S608
            "WHERE source_topic = {t:String} "
            "GROUP BY status, error_code ORDER BY status, error_code",
            parameters={"t": topics.requests},
        )
    finally:
        client.close()
    rows = Table(
        "status", "error_code", "rows", title=f"ClickHouse {settings.clickhouse.describe()}"
    )
    for status, code, count in result.result_rows:
        rows.add_row(status, code, str(count))
    console.print(rows)
