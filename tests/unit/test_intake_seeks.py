"""After a rebalance, a partition's commits follow what was processed: no stale drain, no creep."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer
from intervaltree import IntervalTree  # type: ignore[import-untyped]

from worker.intake import BatchConsumer, DrainedRecords, SeekLedger, unique_acknowledgements


class _TP(NamedTuple):
    topic: str
    partition: int


#: The partition the bookkeeping tests follow, of the topic read in batches.
P = _TP("requests", 0)


def bookkeeping(
    cls: type[Any], committed: int, gaps: list[tuple[int, int]], acked: list[int]
) -> Any:
    """A consumer of ``cls`` with only Faust's offset bookkeeping for partition ``P``."""
    consumer = object.__new__(cls)
    consumer.app = SimpleNamespace(batch_feed=SimpleNamespace(topics=frozenset({"requests"})))
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._gap = defaultdict(IntervalTree)
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._committed_offset[P] = committed
    for begin, end in gaps:
        consumer._gap[P].addi(begin, end)
    consumer._acked[P].extend(acked)
    consumer._acked_index[P].update(acked)
    return consumer


def commits(consumer: Any, rounds: int) -> list[int | None]:
    """The offsets ``rounds`` commits would take, each advancing the committed offset."""
    taken = []
    for _ in range(rounds):
        offset = consumer._new_offset(P)
        taken.append(offset)
        if offset is not None:
            consumer._committed_offset[P] = offset
    return taken


def test_an_offset_that_is_a_gap_and_acknowledged_no_longer_makes_commits_creep() -> None:
    # 11 to 13 were taken for a gap, then read again from a seek and acknowledged.
    acked = [10, 11, 12, 13, 14, 15]
    faust = commits(bookkeeping(FaustConsumer, 10, [(11, 14)], acked), 3)
    assert faust[:2] == [12, 13], "Faust's own count breaks its run at every doubled offset"
    assert commits(bookkeeping(BatchConsumer, 10, [(11, 14)], acked), 3) == [16, None, None]


def test_nothing_is_committed_past_a_record_not_acknowledged_at_the_committed_offset() -> None:
    # Around a rebalance 447 and 448 were processed before the seek to the committed
    # offset (446) brought 446 again: Faust's check, one off, would commit past 446.
    assert commits(bookkeeping(FaustConsumer, 446, [], [447, 448]), 1) == [449]
    consumer = bookkeeping(BatchConsumer, 446, [], [447, 448])
    assert commits(consumer, 2) == [None, None]
    consumer._acked[P].append(446)
    assert commits(consumer, 2) == [449, None]


def test_other_topics_keep_faust_s_commits() -> None:
    # They take Faust's path, record by record; their read offsets are Faust's own.
    consumer = bookkeeping(BatchConsumer, 446, [], [447, 448])
    consumer.app.batch_feed.topics = frozenset({"elsewhere"})
    assert commits(consumer, 1) == [449]


def test_a_gap_at_the_committed_offset_lets_the_commit_pass() -> None:
    # 446 holds no record (a transaction marker): the fetch loop took it for a gap.
    assert commits(bookkeeping(BatchConsumer, 446, [(446, 447)], [447, 448]), 1) == [449]


def test_the_committed_offset_forgotten_at_a_revocation_still_holds_the_commit() -> None:
    faust = bookkeeping(FaustConsumer, 446, [], [447, 448])
    faust._committed_offset[P] = None  # Faust forgets it before its handler commits
    assert faust._new_offset(P) == 449
    consumer = bookkeeping(BatchConsumer, 446, [], [447, 448])
    consumer._committed_offset[P] = None
    consumer._revoked_committed = {P: 446}
    assert consumer._new_offset(P) is None
    consumer._acked[P].insert(0, 446)
    assert consumer._new_offset(P) == 449


def test_folding_keeps_gaps_above_the_highest_acknowledgement_for_later() -> None:
    acked = [5, 6, 9]
    gaps = IntervalTree()
    gaps.addi(6, 9)
    gaps.addi(20, 25)
    unique_acknowledgements(acked, gaps)
    assert acked == [5, 6, 7, 8, 9]
    assert sorted((i.begin, i.end) for i in gaps) == [(20, 25)]


def test_a_drain_is_stale_only_for_partitions_sought_after_it() -> None:
    ledger = SeekLedger()
    ledger.sought(["p0"])
    drained_at = ledger.now()
    assert not ledger.stale("p0", drained_at), "sought before the drain: read from the seek"
    ledger.sought(["p1"])
    assert ledger.stale("p1", drained_at), "sought after the drain: from the old position"
    assert not ledger.stale("p0", drained_at)
    assert not ledger.stale("p2", drained_at), "never sought"
    assert not ledger.stale("p1", ledger.now())


class Fetcher:
    """aiokafka's fetcher in small: the seeks it was asked for, with the ledger's tick then."""

    def __init__(self, ledger: SeekLedger) -> None:
        self.ledger = ledger
        self.calls: list[tuple[str, Any, int]] = []

    def seek_to(self, tp: Any, offset: int) -> None:
        self.calls.append(("seek_to", (tp, offset), self.ledger.now()))

    def request_offset_reset(self, tps: Any, strategy: Any) -> str:
        self.calls.append(("reset", (tuple(tps), strategy), self.ledger.now()))
        return "waiter"


def test_every_seek_through_the_fetcher_is_recorded_before_the_position_moves() -> None:
    ledger = SeekLedger()
    fetcher = Fetcher(ledger)
    ledger.watch(fetcher)
    drained_at = ledger.now()
    fetcher.seek_to("p0", 42)
    assert fetcher.request_offset_reset(iter(["p1", "p2"]), "earliest") == "waiter"
    assert fetcher.calls == [("seek_to", ("p0", 42), 1), ("reset", (("p1", "p2"), "earliest"), 2)]
    assert all(ledger.stale(tp, drained_at) for tp in ("p0", "p1", "p2"))
    assert not ledger.stale("p3", drained_at)


def test_drained_records_carry_their_tick_and_stay_a_mapping() -> None:
    drained = DrainedRecords({"p0": [1, 2]}, drained_at=7)
    assert drained == {"p0": [1, 2]}
    assert drained.drained_at == 7


def test_the_backlog_counts_unread_records_of_the_feeds_topics_only() -> None:
    consumer = object.__new__(BatchConsumer)
    consumer.app = SimpleNamespace(batch_feed=SimpleNamespace(topics=frozenset({"requests"})))
    read = {_TP("requests", 0): 99, _TP("requests", 1): 50, _TP("catalog", 0): 0}
    high = {_TP("requests", 0): 150, _TP("requests", 1): 51, _TP("catalog", 0): 10_000}
    revoked = _TP("requests", 3)
    unread = _TP("requests", 2)
    high[unread] = 500

    def highwater(tp: _TP) -> int | None:
        if tp == revoked:
            raise AssertionError("not assigned")
        return high.get(tp)

    consumer._read_offset = defaultdict(lambda: None, read)
    consumer.assignment = lambda: {*read, revoked, unread}
    consumer.highwater = highwater
    # 100..149 beyond offset 99; none beyond 50 (51 is the next offset to be written);
    # nothing read yet, revoked and other topics are not counted.
    assert consumer.backlog() == 50
    high[_TP("requests", 1)] = 40  # a stale high-water mark never counts below zero
    assert consumer.backlog() == 50


def _acking(cls: type[Any], committed: int | None) -> Any:
    """A consumer of ``cls`` with only the bookkeeping that acknowledgements touch."""
    consumer = object.__new__(cls)
    consumer.app = SimpleNamespace(
        topics=SimpleNamespace(acks_enabled_for=lambda topic: topic != "no-acks")
    )
    consumer._committed_offset = defaultdict(lambda: None)
    consumer._committed_offset[_TP("requests", 0)] = committed
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._unacked_messages = set()
    consumer._n_acked = 0
    consumer._waiting_for_ack = None
    return consumer


def _messages() -> list[SimpleNamespace]:
    def message(topic: str, partition: int, offset: int) -> SimpleNamespace:
        return SimpleNamespace(topic=topic, tp=_TP(topic, partition), offset=offset, acked=False)

    return [
        message("requests", 0, 3),  # below the committed offset
        message("requests", 0, 5),
        message("requests", 0, 6),
        message("requests", 0, 6),  # the same offset again (redelivered)
        message("requests", 1, 9),
        message("no-acks", 0, 1),
    ]


def test_acknowledging_a_batch_leaves_what_acknowledging_each_message_leaves() -> None:
    one_by_one, batched = _acking(FaustConsumer, 5), _acking(BatchConsumer, 5)
    first, second = _messages(), _messages()
    for consumer, messages in ((one_by_one, first), (batched, second)):
        for index, message in enumerate(messages):
            message.index = index
        consumer._unacked_messages = _Unacked(range(len(messages)))
    counted = sum(FaustConsumer.ack(one_by_one, message) for message in first)
    assert batched.ack_many(second) == counted == 3
    for field in ("_acked", "_acked_index", "_n_acked"):
        assert getattr(batched, field) == getattr(one_by_one, field), field
    assert batched._unacked_messages == one_by_one._unacked_messages
    assert [m.acked for m in second] == [m.acked for m in first] == [True] * 6
    assert batched.ack_many(second) == 0, "a message is acknowledged once"


class _Unacked(set[int]):
    """Unacknowledged messages by their place in the batch: ``discard`` takes the message."""

    def discard(self, message: Any) -> None:
        super().discard(message.index)


def test_a_partition_sought_to_its_committed_offset_reads_on_from_the_one_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    requests, later, other = _TP("requests", 0), _TP("requests", 1), _TP("catalog", 0)

    async def faust_perform_seek(self: Any) -> None:
        # What Faust's seek leaves: read and committed offsets set to the committed ones.
        self._read_offset.update({requests: 446, other: 12})
        self._committed_offset.update({requests: 446, other: 12})

    monkeypatch.setattr(FaustConsumer, "perform_seek", faust_perform_seek)
    consumer: Any = object.__new__(BatchConsumer)
    consumer.app = SimpleNamespace(batch_feed=SimpleNamespace(topics=frozenset({"requests"})))
    consumer._read_offset = defaultdict(lambda: None, {later: 90})
    consumer._committed_offset = defaultdict(lambda: None, {later: 80})
    asyncio.run(consumer.perform_seek())
    # A first record at 448 now follows a gap (446, 447); read offsets past the
    # committed one, and other topics' (which take Faust's path), are left alone.
    assert dict(consumer._read_offset) == {requests: 445, later: 90, other: 12}
