"""An in-memory row sink with the same chunking, skip and deduplication rules as ClickHouse."""

from __future__ import annotations

from collections.abc import Sequence

from worker.flow.output import DeadLetterRow, PartitionRows, RequestRow
from worker.sinks.base import DEAD_LETTERS_TABLE, REQUESTS_TABLE, dedup_token


class MemorySink:
    """Keeps rows in lists; remembers tokens and high-water offsets like the real sink.

    ``insert_max_rows`` cuts slices into chunks exactly as :class:`ClickHouseSink`
    does, so the same writes produce the same tokens in both.
    """

    def __init__(self, *, insert_max_rows: int = 100_000) -> None:
        self.rows: list[RequestRow] = []
        self.dead_letters: list[DeadLetterRow] = []
        self.tokens: set[str] = set()
        self.high_water: dict[tuple[str, int], int] = {}
        self.insert_max_rows = insert_max_rows
        self.inserts = 0
        self.deduplicated = 0

    async def start(self) -> None:
        return None

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        for part in slices:
            for chunk in part.chunks(self.insert_max_rows):
                self._write_chunk(chunk)

    def _write_chunk(self, chunk: PartitionRows) -> None:
        key = (chunk.topic, chunk.partition)
        fresh = chunk.above(self.high_water.get(key, -1))
        if fresh is None:
            self.deduplicated += 1
            return
        if fresh.dead_letters:
            token = dedup_token(DEAD_LETTERS_TABLE, fresh)
            if token not in self.tokens:
                self.tokens.add(token)
                self.dead_letters.extend(fresh.dead_letters)
        token = dedup_token(REQUESTS_TABLE, fresh)
        if token in self.tokens:
            # ClickHouse acknowledges a deduplicated insert like any other.
            self.deduplicated += 1
        else:
            self.tokens.add(token)
            self.rows.extend(fresh.rows)
            self.inserts += 1
        self.high_water[key] = max(self.high_water.get(key, -1), fresh.last_offset)

    async def ping(self) -> None:
        return None

    def forget_positions(self) -> None:
        return None

    async def close(self) -> None:
        return None
