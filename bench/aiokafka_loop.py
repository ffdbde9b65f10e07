"""Baseline A: a plain aiokafka loop, consume -> orjson decode -> encode -> produce.

What a hand-written consumer does with no framework at all: ``getmany``, decode
and re-encode every value with orjson, and send it with linger, never awaiting a
single delivery. Run as its own process by the benchmark, like the worker:

    python -m bench.aiokafka_loop --bootstrap HOST:PORT --topic IN --out-topic OUT \
        --group GROUP --first-file PATH
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def mark_first(path: str | Path) -> None:
    """Note when the first message arrived (once per run: a few microseconds, not per event)."""
    Path(path).write_text(repr(time.time()))


async def forward(args: argparse.Namespace) -> None:
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await consumer.start()
    await producer.start()
    first = True
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                if first and messages:
                    first = False
                    mark_first(args.first_file)
                for message in messages:
                    try:
                        value = orjson.dumps(orjson.loads(message.value))
                    except orjson.JSONDecodeError:
                        value = message.value  # broken samples pass through unchanged
                    await producer.send(args.out_topic, value, key=message.key)
    finally:
        await producer.stop()  # flushes what is still lingering
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--bootstrap", "--topic", "--out-topic", "--group", "--first-file"):
        parser.add_argument(name, required=True)
    asyncio.run(forward(parser.parse_args()))


if __name__ == "__main__":
    main()
