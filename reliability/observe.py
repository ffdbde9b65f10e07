"""What the worker produced, read back from the real outputs.

- :class:`LagSampler` polls the consumer group's lag (end offsets of the requests
  topic minus the group's committed offsets) once a second with the admin
  client, all through the scenario; a sample the broker cannot answer (it is
  down) is skipped.
- :func:`read_outputs` reads the responses and dead-letter topics from the
  beginning, each record with the broker's timestamp and the source position it
  names (``meta.source`` of a response, ``dlq-source-*`` headers of a dead letter).
- :func:`stored` asks a worker's ClickHouse for its rows, raw and with FINAL,
  its dead-letter rows and its usage counts, in one query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from reliability.load import Position
from tests.support.worker import WorkerStack

log = logging.getLogger(__name__)


class LagSampler:
    """The group's lag on the requests topic, sampled every ``interval_s``."""

    def __init__(self, bootstrap: str, group: str, topic: str, interval_s: float = 1.0) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topic = topic
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def max_lag(self) -> int:
        return max((lag for _, lag in self.samples), default=0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lag-sampler")

    async def settled(self, timeout_s: float) -> int | None:
        """The lag once a sample taken from now on finds it 0, or the last one at the timeout.

        Once every message has its outcome, a worker that commits what it processed
        brings the lag to 0 within a commit interval; a partition whose commits
        stopped keeps it above.
        """
        since = time.time()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            fresh = [lag for at, lag in self.samples if at >= since]
            if fresh and fresh[-1] == 0:
                return 0
            await asyncio.sleep(0.5)
        return self.samples[-1][1] if self.samples else None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, request_timeout_ms=5000
        )
        await admin.start()
        await consumer.start()
        try:
            while True:
                try:
                    lag = await asyncio.wait_for(self._lag(admin, consumer), 5)
                except Exception as error:  # noqa: BLE001 - a broker outage is a scenario, not a bug
                    log.debug("lag sample skipped: %s", error)
                else:
                    self.samples.append((time.time(), lag))
                await asyncio.sleep(self.interval_s)
        finally:
            await consumer.stop()
            await admin.close()

    async def _lag(self, admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer) -> int:
        partitions = [
            TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic) or ()
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            return 0
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(self.group)
        done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
        return sum(end - done.get(tp, 0) for tp, end in ends.items())


@dataclass(frozen=True, slots=True)
class Output:
    """A response or dead letter: the source position it is about and when it was written."""

    position: Position
    timestamp_s: float
    code: str
    reason: str | None = None


@dataclass
class Outputs:
    responses: list[Output] = field(default_factory=list)
    dead_letters: list[Output] = field(default_factory=list)

    def positions(self) -> set[Position]:
        return {o.position for o in self.responses} | {o.position for o in self.dead_letters}


def _response(record: Any) -> Output:
    body = orjson.loads(record.value)
    source = body["meta"]["source"]
    code = (body.get("error") or {}).get("code", "ok")
    return Output((int(source["partition"]), int(source["offset"])), record.timestamp / 1000, code)


def _dead_letter(record: Any) -> Output:
    headers = {k: bytes(v) for k, v in record.headers}
    position = (int(headers["dlq-source-partition"]), int(headers["dlq-source-offset"]))
    reason = headers["dlq-reason"].decode()
    return Output(position, record.timestamp / 1000, reason, reason)


async def read_outputs(
    bootstrap: str,
    responses: str,
    dead_letters: str,
    *,
    until: Callable[[Outputs], bool],
    timeout_s: float,
    settle_s: float,
) -> Outputs:
    """Both topics from the beginning, until ``until`` holds (then ``settle_s`` more) or timeout."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    out = Outputs()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p)
            for topic in (responses, dead_letters)
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        settle_until: float | None = None
        while time.monotonic() < deadline:
            if settle_until is None and until(out):
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            batch = await consumer.getmany(timeout_ms=300)
            for tp, records in batch.items():
                parse = _response if tp.topic == responses else _dead_letter
                target = out.responses if tp.topic == responses else out.dead_letters
                target.extend(parse(r) for r in records)
        return out
    finally:
        await consumer.stop()


@dataclass(frozen=True, slots=True)
class Stored:
    """One ClickHouse store's contents, reduced to what the accounting needs."""

    #: Source position of every requests row, raw (copies included).
    rows: list[Position]
    #: (tenant, request_id) of every requests row read with FINAL.
    final_rows: list[tuple[str, str]]
    #: (reason, position) of every dead_letters row, raw.
    dead_letters: list[tuple[str, Position]]
    dead_letters_final: int
    #: Requests counted by the usage_per_minute view.
    counted: int


_STORED_SQL = """
SELECT
  (SELECT groupArray(tuple(source_partition, source_offset)) FROM requests) AS rows,
  (SELECT groupArray(tuple(tenant, request_id)) FROM requests FINAL) AS final_rows,
  (SELECT groupArray(tuple(reason, source_partition, source_offset)) FROM dead_letters)
    AS dead_letters,
  (SELECT count() FROM dead_letters FINAL) AS dead_letters_final,
  (SELECT sum(requests) FROM usage_per_minute) AS counted
"""


def stored(stack: WorkerStack) -> Stored:
    """The stack's ClickHouse contents (through its worker's endpoint, or chDB when stopped)."""
    [row] = stack.query(_STORED_SQL)
    return Stored(
        rows=[(int(p), int(o)) for p, o in row["rows"]],
        final_rows=[(str(t), str(r)) for t, r in row["final_rows"]],
        dead_letters=[(str(reason), (int(p), int(o))) for reason, p, o in row["dead_letters"]],
        dead_letters_final=int(row["dead_letters_final"]),
        counted=int(row["counted"] or 0),
    )
