"""Baseline B: a plain faust-streaming agent that forwards each event.

    async for event in stream:
        await out.send(value=event)

Faust's per-event path as documented, with its defaults, except what a
deployment would set anyway: the broker, reading from the earliest offset, no
web server, no leader topic, and no terminal spinner (at WARNING the spinner sets
the root logger to DEBUG, which would charge Faust for log records it does not
need; the worker switches it off too). Run as its own process by the benchmark:

    python -m bench.faust_forwarder --bootstrap HOST:PORT --topic IN --out-topic OUT \
        --app-id ID --first-file PATH --datadir DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import faust


def mark_first(path: Path) -> None:
    """Note when the first event arrived (once per run, not per event)."""
    path.write_text(repr(time.time()))


def build(args: argparse.Namespace) -> faust.App:
    app = faust.App(
        args.app_id,
        broker=";".join(f"kafka://{s}" for s in args.bootstrap.split(",")),
        datadir=args.datadir,
        store="memory://",
        autodiscover=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    source = app.topic(
        args.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    out = app.topic(args.out_topic, key_serializer="raw", value_serializer="raw")
    first_file = Path(args.first_file)

    @app.agent(source)
    async def forward(stream: Any) -> None:
        first = True
        async for event in stream:
            if first:
                first = False
                mark_first(first_file)
            await out.send(value=event)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--bootstrap", "--topic", "--out-topic", "--app-id", "--first-file", "--datadir"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    app = build(args)
    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None
    sys.argv = sys.argv[:1]  # faust's Worker parses the command line again
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
