"""The insert deduplication token: a pure function of the slice's table and position."""

from __future__ import annotations

from collections.abc import Callable

from worker.flow.output import PartitionRows
from worker.sinks.base import dedup_token

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
