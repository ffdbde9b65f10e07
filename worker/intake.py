"""Faust's consumer, handing whole fetched batches to the worker.

Faust delivers every message on its own: the fetch loop waits on two tasks per
message (``wait_first(callback(message), suspend_flow.wait())``), the conductor
decodes it into an event and queues it, and the stream runs its processors and
context switches before an agent sees it. Measured here that costs a couple of
hundred microseconds per message, more than the whole request flow.

This module keeps Faust's consumer (group membership, assignment, generation
checks, flow control during rebalances, acknowledgement bookkeeping and
commits) and changes one thing: for the topics the worker reads in batches, the
fetch loop hands each fetched batch to a bounded :class:`BatchFeed` in one step,
after tracking every message as unacknowledged exactly as the conductor would.
The worker acknowledges each message through :meth:`Consumer.ack` once its
batch is done, so Faust commits only what was processed, and a rebalance waits
(``stream_wait_empty``) for in-flight batches to finish. Messages of every
other topic (table changelogs, other agents) still take Faust's path.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from worker.observability.group import group_state

log = logging.getLogger(__name__)


def raw_topic(app: Any, name: str, **options: Any) -> Any:
    """``name`` as a Faust topic of raw bytes: keys and values as the broker holds them.

    The worker decodes what it consumes itself (orjson, never pickle), and an
    empty value is a message too (a client error to answer, or a tombstone).
    ``options`` go to ``app.topic`` as well.
    """
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
        **options,
    )


class BatchFeed:
    """A queue of fetched batches, bounded by the records it holds.

    Its bound is the backpressure: when the worker is slow (ClickHouse down,
    say), the fetch loop blocks on :meth:`put`, Faust stops fetching, and at
    most ``max_records`` fetched records wait here. Bounding records rather than
    fetches lets small fetches (a few records each, when requests trickle in)
    pack together, so the batch loop takes everything that arrived while it was
    busy in one batch instead of one fetch per cycle, a queue that would hold
    requests back by several cycles.
    """

    def __init__(self, topics: Iterable[str], max_records: int) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        self.topics = frozenset(topics)
        self.max_records = max_records
        self._fetches: deque[list[Any]] = deque()
        self._records = 0
        self._blocked = 0
        self._changed: asyncio.Condition | None = None

    @property
    def _condition(self) -> asyncio.Condition:
        # Created on first use, inside the event loop that Faust runs.
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def _has_room(self, records: int) -> bool:
        # A fetch larger than the bound still enters an empty feed, alone.
        return not self._fetches or self._records + records <= self.max_records

    async def put(self, batch: list[Any]) -> None:
        """Hand over one fetched batch; waits while the feed has no room for it."""
        async with self._condition:
            if not self._has_room(len(batch)):
                self._blocked += 1
                self._condition.notify_all()
                try:
                    await self._condition.wait_for(lambda: self._has_room(len(batch)))
                finally:
                    self._blocked -= 1
            self._fetches.append(batch)
            self._records += len(batch)
            self._condition.notify_all()

    async def take(self, limit: int) -> list[Any]:
        """The oldest fetches, whole, joined up to ``limit`` records; waits for one.

        The first fetch is taken whatever its size; a fetch that would go past
        ``limit`` waits for the next call.
        """
        async with self._condition:
            await self._condition.wait_for(lambda: bool(self._fetches))
            taken = self._fetches.popleft()
            while self._fetches and len(taken) + len(self._fetches[0]) <= limit:
                taken.extend(self._fetches.popleft())
            self._records -= len(taken)
            self._condition.notify_all()
            return taken

    def records(self) -> int:
        """Records waiting to be processed."""
        return self._records

    def full(self) -> bool:
        """Whether the feed holds all it may, or a fetch is waiting for room."""
        return self._blocked > 0 or self._records >= self.max_records

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds; checked whenever a fetch comes or goes."""
        async with self._condition:
            await self._condition.wait_for(predicate)


class BatchTaker:
    """When the batch loop takes its next batch from the feed.

    Every batch pays fixed costs whatever its size (two ClickHouse inserts above
    all), so batches taken the moment a few records arrived spend CPU the rest of
    the flow needs: at 4,000 requests/s, 0.30 CPU seconds per 1,000 requests
    against 0.15 for full batches. So a batch is taken at once only when there is
    a backlog (the feed is full, or the feed and what the broker holds beyond the
    read offsets make a batch) or nothing is being delivered; otherwise it waits
    for the delivery loop to finish, gathering what arrives meanwhile. Under a
    backlog, batch k+1 is processed while batch k is delivered, as before.
    """

    def __init__(self, feed: BatchFeed, batch_max: int, backlog: Callable[[], int]) -> None:
        self._feed = feed
        self._batch_max = batch_max
        self._backlog = backlog
        self._idle = asyncio.Event()
        self._idle.set()

    def delivering(self) -> None:
        """A batch was handed to the delivery loop."""
        self._idle.clear()

    def delivered(self) -> None:
        """The delivery loop finished its batch."""
        self._idle.set()

    def _backlogged(self) -> bool:
        feed = self._feed
        return feed.full() or feed.records() + self._backlog() >= self._batch_max

    async def take(self) -> list[Any]:
        """The next batch: every fetch waiting in the feed, up to a batch's size."""
        if not self._idle.is_set() and not self._backlogged():
            waits = {
                asyncio.ensure_future(self._idle.wait()),
                asyncio.ensure_future(self._feed.wait_until(self._backlogged)),
            }
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        return await self._feed.take(self._batch_max)


#: Most commits tried on a revocation before Faust may forget what is left.
REVOKE_COMMIT_ROUNDS = 20


class Committer(Protocol):
    """What :func:`commit_acknowledged` needs of Faust's consumer."""

    @property
    def _acked(self) -> Mapping[Any, list[int]]:
        """Acknowledged offsets not committed yet, by topic-partition."""

    async def maybe_wait_for_commit_to_finish(self) -> bool: ...

    async def commit(self) -> bool: ...


async def commit_acknowledged(consumer: Committer, partitions: Iterable[Any]) -> int:
    """Commit until nothing acknowledged on ``partitions`` waits; the commits it took.

    The batch loop keeps finishing batches (and acknowledging them) while a commit
    is awaited, so one commit can leave acknowledgements behind. The check that
    none is left runs without a yield before the caller's next step.
    """
    partitions = list(partitions)
    for round_ in range(1, REVOKE_COMMIT_ROUNDS + 1):
        # commit() skips while another commit runs: let that one finish first.
        while await consumer.maybe_wait_for_commit_to_finish():
            pass
        await consumer.commit()
        if not any(consumer._acked.get(tp) for tp in partitions):
            return round_
    # Left over: acknowledged behind a message still in flight. Its partition's next
    # owner consumes it again (at-least-once); the sink skips its stored rows.
    return REVOKE_COMMIT_ROUNDS


class SeekLedger:
    """When each partition was last sought, on a clock that every drain of fetched records reads.

    Faust's aiokafka consumer runs in a thread of its own: records drained there
    travel to the event loop while the thread may already be seeking their
    partition (Faust's recovery resumes the partitions of a new assignment before
    it seeks them to the committed offsets). Such records come from before the
    seek: handing them over would move the read offset past it, the records
    from the sought offset on would be skipped as read, and the acknowledgements
    and gaps of both would stall the partition's commits. aiokafka reads the
    partition again from where the seek put it, so they are only dropped.

    Seeks and drains happen in the consumer's thread, each in one step with the
    tick, so a drain is stale for a partition exactly when the partition was
    sought after it.
    """

    def __init__(self) -> None:
        self._clock = 0
        self._sought: dict[Any, int] = {}

    def sought(self, partitions: Iterable[Any]) -> None:
        """Record a seek of ``partitions`` (called where the position changes)."""
        self._clock += 1
        for tp in partitions:
            self._sought[tp] = self._clock

    def now(self) -> int:
        """The tick a drain happening now is stamped with."""
        return self._clock

    def stale(self, tp: Any, drained_at: int) -> bool:
        """Whether records of ``tp`` drained at ``drained_at`` predate its latest seek."""
        return self._sought.get(tp, 0) > drained_at

    def watch(self, fetcher: Any) -> None:
        """Record every seek made through aiokafka's fetcher, in the step that makes it."""
        seek_to = fetcher.seek_to
        request_offset_reset = fetcher.request_offset_reset

        # Recorded before the position changes: Faust also seeks from the event loop's
        # thread, and a drain between the two steps must not count as stale, or records
        # read from the new position would be dropped after aiokafka moved past them.
        def seek_and_record(tp: Any, offset: int) -> None:
            self.sought((tp,))
            seek_to(tp, offset)

        def reset_and_record(tps: Iterable[Any], strategy: Any) -> Any:
            tps = tuple(tps)  # read twice
            self.sought(tps)
            return request_offset_reset(tps, strategy)

        fetcher.seek_to = seek_and_record
        fetcher.request_offset_reset = reset_and_record


class DrainedRecords(dict[Any, list[Any]]):
    """Records drained in the consumer thread, stamped with the seek ledger's tick."""

    def __init__(self, records: Mapping[Any, list[Any]], drained_at: int) -> None:
        super().__init__(records)
        self.drained_at = drained_at


class SeekAwareConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, keeping a :class:`SeekLedger` of its seeks and drains."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.ledger = SeekLedger()

    async def on_start(self) -> None:
        await super().on_start()
        self.ledger.watch(self._ensure_consumer()._fetcher)

    def _create_worker_consumer(self, transport: Any) -> Any:
        # Faust passes a fixed fetch_max_wait_ms of 1,500; aiokafka reads it when the
        # consumer starts (see KafkaSettings.fetch_max_wait_ms for why it is shorter).
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = cast("BatchApp", self.app).fetch_max_wait_ms
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - Faust's signature
        max_records: int | None = None,
    ) -> Any:
        records = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        # No await between the drain and the stamp: still the same step of the thread.
        return DrainedRecords(records, self.ledger.now())


def unique_acknowledgements(acked: list[int], gaps: Any) -> None:
    """Fold the gaps below the highest acknowledgement into ``acked``, each offset once.

    Faust counts an offset that is both a gap and acknowledged twice, and its run of
    consecutive offsets then breaks at every such offset: commits would advance one
    offset per commit. Folding them here, as a set, leaves Faust nothing to fold.
    """
    if not acked:
        return
    top = max(acked)
    folded: set[int] = set(acked)
    if gaps:
        candidates = gaps.overlap(0, top)
        if candidates:
            end = top + 1
            for interval in candidates:
                folded.update(range(interval.begin, interval.end))
                end = max(end, interval.end)
            gaps.chop(0, end)
    if len(folded) != len(acked):
        acked[:] = sorted(folded)


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop feeds batches for the feed's topics."""

    _thread: SeekAwareConsumerThread
    #: The ledger's tick of the records the fetch loop is handing over.
    _drained_at: int = 0

    def _new_consumer_thread(self) -> SeekAwareConsumerThread:
        return SeekAwareConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def group_state(self) -> dict[str, Any]:
        """The Kafka client's group coordinator state, for the log line of a stuck worker."""
        return group_state(getattr(self._thread, "_consumer", None))

    #: The committed offsets of the partitions being revoked (see on_partitions_revoked).
    _revoked_committed: Mapping[Any, int | None] = {}

    def _new_offset(self, tp: Any) -> int | None:
        """The offset to commit: the end of the acknowledged run that starts at the committed one.

        Faust commits the first run of consecutive acknowledgements wherever it
        starts: when the committed offset is unknown (forgotten at a revocation),
        or when only the committed offset itself is missing (its check is one
        off). But a partition's records can be handed over out of order: around
        a rebalance a later record may be processed before the seek to the
        committed offset brings the earlier ones. Committing past a record not
        processed yet would lose it, so nothing is committed until the record at
        the committed offset is acknowledged (or known absent: a gap). So for
        the topics read in batches; the others take Faust's path and its rule.
        """
        acked = self._acked[tp]
        unique_acknowledgements(acked, self._gap[tp])
        if acked and tp.topic in cast("BatchApp", self.app).batch_feed.topics:
            committed = self._committed_offset[tp]
            if committed is None:
                committed = self._revoked_committed.get(tp)
            if committed is not None and min(acked) > committed:
                return None
        return super()._new_offset(tp)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # Faust takes a partition sought to its committed offset C as read up to C, as
        # if the record at C had been read. When C holds no record (a transaction's
        # marker, say), the first record read is then not seen to follow a gap, C is
        # never acknowledged, and the partition would never be committed again. Read
        # up to C - 1: a first record past C marks C onwards as a gap.
        topics = cast("BatchApp", self.app).batch_feed.topics
        read = self._read_offset
        for tp, committed in self._committed_offset.items():
            if tp.topic in topics and committed and read.get(tp) == committed:
                read[tp] = committed - 1

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        # Faust forgets the acknowledged offsets of revoked partitions first and commits
        # in its revocation handler afterwards, so what was acknowledged since the last
        # timed commit would be processed again by the partitions' next owner (seen as
        # duplicate rows when a worker joins under load). Commit it before it is forgotten:
        # the flow stops only in Faust's handler, so batches finishing during the commit
        # are committed by the next round, not forgotten.
        await commit_acknowledged(self, revoked)
        # Faust forgets their committed offsets too, before its handler commits what the
        # batches in flight acknowledge: kept here, so those commits still start there.
        self._revoked_committed = {tp: self._committed_offset.get(tp) for tp in revoked}
        try:
            await super().on_partitions_revoked(revoked)
            # Faust's handler then waits for the batches in flight and commits once more,
            # but that commit is skipped while another one runs (the fetch loop's or the
            # timer's), and what those batches acknowledged would be left to the next owner.
            await commit_acknowledged(self, revoked)
        finally:
            self._revoked_committed = {}

    async def _drain_messages(self, fetcher: Any) -> None:
        feed = cast("BatchApp", self.app).batch_feed
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                batch = await self._drain_fetch(feed.topics)
                if batch:
                    self._track_batch(batch)
                    # Not raced against suspend_flow: a tracked batch must reach the
                    # worker, which acknowledges it, or a rebalance would wait for it.
                    await feed.put(batch)
                commit_every = self._commit_every
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _drain_fetch(self, batch_topics: frozenset[str]) -> list[Any]:
        """One fetch's records: the feed's topics' as a batch, the others through Faust's callback.

        Faust's ``getmany`` does the same checks for every message through a
        round-robin generator: whether the flow is active and the generation
        unchanged, whether the partition is active, and the partition's end
        offset for its monitor. Nothing changes them between two messages but an
        await, so they are made once per partition and after every await; the
        partitions' order does not matter to a batch. The rest is Faust's loop:
        the read offsets, the gaps they reveal, and a message per record.
        """
        records, active = await self._wait_next_records(1.0)
        if records is None or self.should_stop:
            return []
        if not self.flow_active:
            # As Faust's getmany: seek back to the committed offsets.
            try:
                await self.perform_seek()
            except Exception as exc:  # noqa: BLE001 - Faust logs and goes on, as here
                log.warning("seeking while the flow is stopped failed: %r", exc)
            return []
        app = self.app
        generation = app.consumer_generation_id
        batch: list[Any] = []
        dropped: dict[Any, int] = {}
        for tp, fetched in records.items():
            if not self.flow_active or app.consumer_generation_id != generation:
                break
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            into = batch if tp.topic in batch_topics else None
            if await self._read_records(tp, fetched, generation, dropped, into):
                break
        if dropped:
            log.info(
                "dropped records drained before their partition was sought: %s",
                ", ".join(f"{tp.topic}[{tp.partition}] {n}" for tp, n in dropped.items()),
            )
        return batch

    def _flow_changed(self, generation: int) -> bool:
        """Whether a rebalance began since the fetch: Faust's getmany stops there too."""
        return not self.flow_active or self.app.consumer_generation_id != generation

    async def _read_records(
        self,
        tp: Any,
        fetched: list[Any],
        generation: int,
        dropped: dict[Any, int],
        batch: list[Any] | None,
    ) -> bool:
        """Read the records of ``tp`` as Faust messages; True if a rebalance began meanwhile.

        The messages go into ``batch``, or, without one (a topic not read in
        batches), one by one to Faust's callback. The flow is checked again after
        every await.
        """
        stale = self._thread.ledger.stale
        drained_at = self._drained_at
        read_offsets = self._read_offset
        to_message = self._to_message
        acks_enabled = self.app.topics.acks_enabled_for(tp.topic)
        for record in fetched:
            if stale(tp, drained_at):
                # Drained before its partition was sought (SeekLedger).
                dropped[tp] = dropped.get(tp, 0) + 1
                continue
            offset = record.offset
            read = read_offsets[tp]
            if read is not None and offset < read:
                continue  # already handed over before a seek
            if read and offset - read > 1 and acks_enabled:
                # Offsets missing from the log (compaction, transaction markers)
                # count as acknowledged, as in Faust's loop.
                await self._add_gap(tp, read + 1, offset)
                if self._flow_changed(generation):
                    return True
            message = to_message(tp, record)
            if batch is not None:
                batch.append(message)
                read_offsets[tp] = offset
                continue
            await self.wait_first(self.callback(message), self.suspend_flow.wait())
            read_offsets[tp] = offset
            if self._flow_changed(generation):
                return True
        return False

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109 - Faust's
        records, active_partitions = await super()._wait_next_records(timeout)
        # Unstamped records (none come from this consumer's thread) count as drained now.
        self._drained_at = getattr(records, "drained_at", self._thread.ledger.now())
        return records, active_partitions

    def _track_batch(self, batch: list[Any]) -> None:
        """Track a fetched batch as unacknowledged, as ``track_message`` does per message.

        Faust's sensors are told once per partition of the batch (its last message):
        their per-message bookkeeping cost about as much as a stage of the request
        flow, and the worker counts its requests itself (``worker_events_in_total``).
        Faust's monitor still sees the read offsets move.
        """
        unacked = self._unacked_messages.add
        last: dict[Any, Any] = {}
        for message in batch:
            unacked(message)
            last[message.tp] = message
        for tp, message in last.items():
            self._on_message_in(tp, message.offset, message)

    def take_current(self, messages: list[Any]) -> list[Any]:
        """The messages of the current consumer generation; forget the others.

        A rebalance can hand back records fetched under the previous assignment.
        Faust's streams skip such messages; so does the worker: processing them
        would duplicate work that the partition's new owner does from the committed
        offset. They are not acknowledged (the partition may still be ours, and the
        seek to committed offsets reads them again) and no longer tracked, so that
        the next rebalance does not wait for them.
        """
        generation = self.app.consumer_generation_id
        current = [m for m in messages if m.generation_id == generation]
        if len(current) != len(messages):
            for message in messages:
                if message.generation_id != generation:
                    self._unacked_messages.discard(message)
        return current

    def ack_many(self, messages: Iterable[Any]) -> int:
        """Faust's :meth:`ack` of every message, under one hold of its lock.

        The same bookkeeping, message by message, as Faust's: each offset counted
        once, none below the committed offset, nothing for topics without acks.
        One call per batch instead of one per message, whose lock, lookups and
        wake-up cost about as much as a stage of the request flow. Returns how
        many offsets were counted.
        """
        acks_enabled_for = self.app.topics.acks_enabled_for
        enabled: dict[str, bool] = {}
        committed_offsets = self._committed_offset
        acked_index = self._acked_index
        acked = self._acked
        forget = self._unacked_messages.discard
        counted = 0
        with ack_lock:
            try:
                for message in messages:
                    if message.acked:
                        continue
                    message.acked = True
                    topic = message.topic
                    on = enabled.get(topic)
                    if on is None:
                        on = enabled[topic] = acks_enabled_for(topic)
                    if not on:
                        continue
                    tp = message.tp
                    offset = message.offset
                    committed = committed_offsets[tp]
                    if committed is not None and offset < committed:
                        continue
                    index = acked_index[tp]
                    if offset not in index:
                        forget(message)
                        index.add(offset)
                        acked[tp].append(offset)
                        counted += 1
            finally:
                self._n_acked += counted
                notify(self._waiting_for_ack)
        return counted

    def backlog(self) -> int:
        """Records of the feed's topics on the broker beyond the read offsets.

        As of the latest fetch response of each assigned partition: fetched
        records waiting in aiokafka's buffer and records not fetched yet.
        """
        topics = cast("BatchApp", self.app).batch_feed.topics
        read = self._read_offset
        total = 0
        for tp in self.assignment():
            if tp.topic not in topics:
                continue
            last = read.get(tp)
            try:
                high = self.highwater(tp)
            except AssertionError:  # revoked since assignment() was read
                continue
            if last is not None and high is not None:
                total += max(0, high - last - 1)
        return total

    def committed_offsets(self) -> dict[Any, int | None]:
        """The group's committed offsets (next offset to read) as this consumer knows them.

        Seeded from the broker after every assignment and advanced by every commit.
        """
        return dict(self._committed_offset)


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer


class BatchApp(faust.App):
    """A Faust app whose consumer feeds :attr:`batch_feed` with whole batches."""

    def __init__(
        self, *args: Any, batch_feed: BatchFeed, fetch_max_wait_ms: int = 1500, **kwargs: Any
    ) -> None:
        self.batch_feed = batch_feed
        #: The longest the broker may hold a fetch of this app's consumer that finds no data.
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)
