"""The insert deduplication token: a pure function of the slice's table and position."""

from __future__ import annotations

from collections.abc import Callable

from worker.flow.output import PartitionRows
from worker.sinks.base import dedup_token, pack

MakeSlice = Callable[..., PartitionRows]


def test_the_same_slice_always_gets_the_same_token(make_slice: MakeSlice) -> None:
    first = dedup_token("requests", make_slice(range(10, 20), partition=3))
    again = dedup_token("requests", make_slice(range(10, 20), partition=3))
    assert first == again == "requests:requests:3:10-19"


def test_the_token_is_named_by_the_first_and_last_offsets_whatever_the_row_order(
    make_slice: MakeSlice,
) -> None:
    assert dedup_token("requests", make_slice([12, 10, 11])) == dedup_token(
        "requests", make_slice([10, 11, 12])
    )


def test_the_token_differs_per_table_topic_partition_and_offset_range(
    make_slice: MakeSlice,
) -> None:
    tokens = {
        dedup_token("requests", make_slice(range(10, 20))),
        dedup_token("other_table", make_slice(range(10, 20))),
        dedup_token("requests", make_slice(range(10, 20), topic="elsewhere")),
        dedup_token("requests", make_slice(range(10, 20), partition=1)),
        dedup_token("requests", make_slice(range(11, 20))),
        dedup_token("requests", make_slice(range(10, 21))),
        dedup_token("requests", make_slice(range(101, 120))),
    }
    assert len(tokens) == 7


def test_tokens_of_adjacent_partitions_and_ranges_cannot_be_confused(
    make_slice: MakeSlice,
) -> None:
    # Partition 1 offsets 10-19 against partition 11 offsets 0-19 and the like.
    assert dedup_token("requests", make_slice(range(10, 20), partition=1)) != dedup_token(
        "requests", make_slice(range(0, 20), partition=11)
    )
    assert dedup_token("requests", make_slice([1, 23])) != dedup_token(
        "requests", make_slice([12, 3])
    )


def test_a_block_token_names_every_slice_in_it(make_slice: MakeSlice) -> None:
    block = [make_slice(range(10, 20)), make_slice(range(3, 5), partition=2)]
    token = dedup_token("requests", *block)
    assert token == dedup_token("requests", *[make_slice(range(10, 20)), block[1]])
    assert token.startswith("requests:")
    for part in block:
        assert f"{part.topic}:{part.partition}:{part.first_offset}-{part.last_offset}" in token
    assert token != dedup_token("requests", block[0])
    assert token != dedup_token("requests", block[0], make_slice(range(3, 6), partition=2))


def test_pack_makes_one_block_of_a_batch_that_fits(make_slice: MakeSlice) -> None:
    slices = [make_slice(range(5), partition=p) for p in (3, 0, 2)]
    blocks = pack(slices, max_rows=100)
    assert len(blocks) == 1
    assert [part.partition for part in blocks[0]] == [0, 2, 3]


def test_pack_cuts_blocks_at_max_rows_and_is_deterministic(make_slice: MakeSlice) -> None:
    def cut() -> list[list[tuple[int, int, int]]]:
        slices = [make_slice(range(7), partition=1), make_slice(range(100, 104), partition=0)]
        return [
            [(part.partition, part.first_offset, part.last_offset) for part in block]
            for block in pack(slices, max_rows=5)
        ]

    blocks = cut()
    assert blocks == cut()
    assert blocks == [[(0, 100, 103)], [(1, 0, 4)], [(1, 5, 6)]]
    sizes = [sum(last - first + 1 for _, first, last in block) for block in blocks]
    assert max(sizes) <= 5
    assert sum(sizes) == 11
