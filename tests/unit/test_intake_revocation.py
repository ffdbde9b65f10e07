"""A revocation commits every acknowledgement before Faust forgets the revoked partitions."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import Consumer as FaustConsumer

from worker.intake import REVOKE_COMMIT_ROUNDS, BatchConsumer, commit_acknowledged


class Consumer:
    """Faust's bookkeeping in small: acknowledged offsets per partition, and commits.

    ``finishing`` are batches the batch loop acknowledges while a commit is awaited,
    one per commit, as it does during a rebalance until Faust stops the flow.
    """

    def __init__(self, finishing: list[tuple[str, list[int]]]) -> None:
        self._acked: defaultdict[str, list[int]] = defaultdict(list)
        self.committed: dict[str, int] = {}
        self.finishing = finishing
        self.commits = 0

    async def maybe_wait_for_commit_to_finish(self) -> bool:
        return False

    async def commit(self) -> bool:
        self.commits += 1
        taken = {tp: max(offsets) + 1 for tp, offsets in self._acked.items() if offsets}
        await asyncio.sleep(0)  # the broker's answer: batches finish meanwhile
        if self.finishing:
            tp, offsets = self.finishing.pop(0)
            self._acked[tp].extend(offsets)
        for tp, offset in taken.items():
            self.committed[tp] = offset
            self._acked[tp] = [o for o in self._acked[tp] if o >= offset]
        return bool(taken)


def test_acknowledgements_that_land_during_the_commit_are_committed_too() -> None:
    consumer = Consumer(finishing=[("p2", [260, 261, 262]), ("p2", [263, 264])])
    consumer._acked["p2"].extend([180, 181])
    rounds = asyncio.run(commit_acknowledged(consumer, ["p2"]))
    assert consumer.committed == {"p2": 265}, "nothing acknowledged is left to be forgotten"
    assert rounds == 3
    assert not consumer._acked["p2"]


def test_other_partitions_do_not_keep_the_revocation_waiting() -> None:
    consumer = Consumer(finishing=[("p0", [5])])
    consumer._acked["p2"].append(7)
    assert asyncio.run(commit_acknowledged(consumer, ["p2"])) == 1
    assert consumer.committed == {"p2": 8}


def test_the_commits_are_bounded_when_acknowledgements_keep_coming() -> None:
    consumer = Consumer(finishing=[("p2", [i]) for i in range(100, 200)])
    consumer._acked["p2"].append(99)
    assert asyncio.run(commit_acknowledged(consumer, ["p2"])) == REVOKE_COMMIT_ROUNDS
    assert consumer.commits == REVOKE_COMMIT_ROUNDS


def test_batches_acknowledged_during_faust_s_revocation_handler_are_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faust forgets the revoked partitions' acknowledgements, then waits for the batches in
    # flight; its last commit is skipped when another commit runs, as here.
    async def faust_handler(self: Any, revoked: set[str]) -> None:
        for tp in revoked:
            self._acked.pop(tp, None)
        await asyncio.sleep(0)
        self._acked["p0"].extend(range(5421, 5661))  # the batch in flight finishes

    monkeypatch.setattr(FaustConsumer, "on_partitions_revoked", faust_handler)
    consumer: Any = object.__new__(BatchConsumer)
    fake = Consumer(finishing=[])
    consumer._acked = fake._acked
    consumer._committed_offset = defaultdict(lambda: None, {"p0": 5419})
    consumer.commit = fake.commit
    consumer.maybe_wait_for_commit_to_finish = fake.maybe_wait_for_commit_to_finish
    fake._acked["p0"].extend([5419, 5420])
    asyncio.run(consumer.on_partitions_revoked({"p0"}))
    assert fake.committed == {"p0": 5661}, "the next owner starts after the last batch"
    assert not fake._acked["p0"]


def test_the_committed_offsets_of_revoked_partitions_are_kept_while_faust_s_handler_commits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int | None] = []

    async def faust_handler(self: Any, revoked: set[str]) -> None:
        for tp in revoked:
            self._committed_offset.pop(tp, None)
        seen.append(self._revoked_committed.get("p0"))

    monkeypatch.setattr(FaustConsumer, "on_partitions_revoked", faust_handler)
    consumer: Any = object.__new__(BatchConsumer)
    fake = Consumer(finishing=[])
    consumer._acked = fake._acked
    consumer._committed_offset = defaultdict(lambda: None, {"p0": 5419, "p1": 7})
    consumer.commit = fake.commit
    consumer.maybe_wait_for_commit_to_finish = fake.maybe_wait_for_commit_to_finish
    asyncio.run(consumer.on_partitions_revoked({"p0"}))
    assert seen == [5419]
    assert consumer._revoked_committed == {}, "kept only for the revocation"
