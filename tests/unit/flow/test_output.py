"""What the pipeline hands to delivery: partition slices and the batch output."""

from __future__ import annotations

from collections.abc import Callable

from worker.flow.output import REQUEST_COLUMNS, BatchOutput, OutboundMessage, PartitionRows

MakeSlice = Callable[..., PartitionRows]


class TestPartitionRows:
    def test_first_and_last_offsets_are_the_extremes(self, make_slice: MakeSlice) -> None:
        part = make_slice([7, 5, 9, 6])
        assert (part.first_offset, part.last_offset) == (5, 9)

    def test_above_a_mark_below_the_slice_is_the_slice_itself(self, make_slice: MakeSlice) -> None:
        part = make_slice(range(5, 10))
        assert part.above(4) is part
        assert part.above(-1) is part

    def test_above_a_mark_inside_the_slice_keeps_only_the_later_rows(
        self, make_slice: MakeSlice
    ) -> None:
        part = make_slice(range(5, 10), topic="t", partition=2)
        fresh = part.above(7)
        assert fresh is not None
        assert (fresh.topic, fresh.partition) == ("t", 2)
        assert fresh.offsets == [8, 9]
        assert fresh.rows == part.rows[3:]
        assert (fresh.first_offset, fresh.last_offset) == (8, 9)
        # The original slice is left whole.
        assert part.offsets == [5, 6, 7, 8, 9]

    def test_above_a_mark_at_or_past_the_last_offset_is_none(self, make_slice: MakeSlice) -> None:
        part = make_slice(range(5, 10))
        assert part.above(9) is None
        assert part.above(100) is None

    def test_above_keeps_rows_and_offsets_paired_when_out_of_order(
        self, make_slice: MakeSlice
    ) -> None:
        part = make_slice([9, 3, 8, 4])
        fresh = part.above(5)
        assert fresh is not None
        assert fresh.offsets == [9, 8]
        assert [row[REQUEST_COLUMNS.index("source_offset")] for row in fresh.rows] == [9, 8]


def test_messages_are_the_responses_then_the_dead_letters() -> None:
    response = OutboundMessage("responses", b"k", b"{}")
    letter = OutboundMessage("dead", b"k", b"raw", (("dlq-reason", b"x"),))
    output = BatchOutput(responses=[response], dead_letters=[letter])
    assert output.messages == [response, letter]
