"""What the pipeline hands to delivery: partition slices and the batch output."""

from __future__ import annotations

from collections.abc import Callable

from worker.flow.output import REQUEST_COLUMNS, BatchOutput, OutboundMessage, PartitionRows

MakeSlice = Callable[..., PartitionRows]


class TestPartitionRows:
    def test_first_and_last_offsets_are_the_extremes(self, make_slice: MakeSlice) -> None:
        part = make_slice([7, 5, 9, 6])
        assert (part.first_offset, part.last_offset) == (5, 9)

    def test_without_nothing_stored_is_the_slice_itself(self, make_slice: MakeSlice) -> None:
        part = make_slice(range(5, 10))
        assert part.without(set()) is part
        assert part.without({1, 2, 11}) is part

    def test_without_some_offsets_keeps_only_the_others(self, make_slice: MakeSlice) -> None:
        part = make_slice(range(5, 10), topic="t", partition=2)
        fresh = part.without({5, 6, 7})
        assert fresh is not None
        assert (fresh.topic, fresh.partition) == ("t", 2)
        assert fresh.offsets == [8, 9]
        assert fresh.rows == part.rows[3:]
        assert (fresh.first_offset, fresh.last_offset) == (8, 9)
        # The original slice is left whole.
        assert part.offsets == [5, 6, 7, 8, 9]

    def test_without_a_hole_keeps_the_rows_on_both_sides(self, make_slice: MakeSlice) -> None:
        part = make_slice(range(5, 10))
        fresh = part.without({7})
        assert fresh is not None
        assert fresh.offsets == [5, 6, 8, 9]

    def test_without_every_offset_is_none(self, make_slice: MakeSlice) -> None:
        part = make_slice(range(5, 10))
        assert part.without(set(range(5, 10))) is None
        assert part.without(set(range(100))) is None

    def test_without_keeps_rows_and_offsets_paired_when_out_of_order(
        self, make_slice: MakeSlice
    ) -> None:
        part = make_slice([9, 3, 8, 4])
        fresh = part.without({3, 4})
        assert fresh is not None
        assert fresh.offsets == [9, 8]
        assert [row[REQUEST_COLUMNS.index("source_offset")] for row in fresh.rows] == [9, 8]

    def test_without_keeps_the_dead_letters_of_the_rows_kept(self, make_slice: MakeSlice) -> None:
        part = make_slice(range(10), dead=[2, 6, 9])
        fresh = part.without(set(range(6)))
        assert fresh is not None
        assert fresh.dead_letter_offsets == [6, 9]
        assert [letter[8] for letter in fresh.dead_letters] == [6, 9]


class TestChunks:
    def test_a_slice_within_the_limit_is_one_chunk_itself(self, make_slice: MakeSlice) -> None:
        part = make_slice(range(5))
        assert part.chunks(5) == [part]
        assert part.chunks(5)[0] is part

    def test_chunks_are_runs_of_consecutive_offsets_in_order(self, make_slice: MakeSlice) -> None:
        part = make_slice([4, 0, 3, 1, 2, 6, 5])
        chunks = part.chunks(3)
        assert [sorted(chunk.offsets) for chunk in chunks] == [[0, 1, 2], [3, 4, 5], [6]]
        assert [(c.first_offset, c.last_offset) for c in chunks] == [(0, 2), (3, 5), (6, 6)]
        for chunk in chunks:
            offsets = [row[REQUEST_COLUMNS.index("source_offset")] for row in chunk.rows]
            assert offsets == chunk.offsets, "rows stay with offsets"
            assert (chunk.topic, chunk.partition) == (part.topic, part.partition)

    def test_dead_letters_go_with_the_chunk_of_their_offset(self, make_slice: MakeSlice) -> None:
        part = make_slice(range(7), dead=[1, 3, 6])
        assert [chunk.dead_letter_offsets for chunk in part.chunks(3)] == [[1], [3], [6]]
        assert sum(len(chunk.dead_letters) for chunk in part.chunks(2)) == 3

    def test_the_same_slice_and_size_always_give_the_same_chunks(
        self, make_slice: MakeSlice
    ) -> None:
        first = [(c.first_offset, c.last_offset) for c in make_slice(range(10, 30)).chunks(6)]
        again = [(c.first_offset, c.last_offset) for c in make_slice(range(10, 30)).chunks(6)]
        assert first == again == [(10, 15), (16, 21), (22, 27), (28, 29)]


def test_messages_are_the_responses_then_the_dead_letters() -> None:
    response = OutboundMessage("responses", b"k", b"{}")
    letter = OutboundMessage("dead", b"k", b"raw", (("dlq-reason", b"x"),))
    output = BatchOutput(responses=[response], dead_letters=[letter])
    assert output.messages == [response, letter]
