"""An in-memory row sink with the same chunking, skip and deduplication rules as ClickHouse."""

from __future__ import annotations

from collections.abc import Sequence

from worker.errors import DatabaseError
from worker.flow.output import DeadLetterRow, PartitionRows, RequestRow
from worker.sinks.base import DEAD_LETTERS_TABLE, REQUESTS_TABLE, Block, dedup_token, pack


class MemorySink:
    """Keeps rows in lists; remembers tokens, high-water and stored offsets like the real sink.

    ``insert_max_rows`` packs slices into blocks exactly as :class:`ClickHouseSink`
    does, so the same writes produce the same tokens in both.
    """

    def __init__(self, *, insert_max_rows: int = 100_000) -> None:
        self.rows: list[RequestRow] = []
        self.dead_letters: list[DeadLetterRow] = []
        self.tokens: set[str] = set()
        #: The cached positions: the highest offset written per topic-partition.
        self.high_water: dict[tuple[str, int], int] = {}
        #: What the "table" holds: the offsets stored per topic-partition.
        self.offsets: dict[tuple[str, int], set[int]] = {}
        self.insert_max_rows = insert_max_rows
        self.inserts = 0
        self.deduplicated = 0
        self.failing: DatabaseError | None = None

    async def start(self) -> None:
        return None

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        for block in pack(slices, self.insert_max_rows):
            self._write_block(block)

    def _write_block(self, block: Block) -> None:
        fresh = [part for chunk in block if (part := self._unstored(chunk))]
        if not fresh:
            self.deduplicated += 1
            return
        letters = [part for part in fresh if part.dead_letters]
        if letters:
            token = dedup_token(DEAD_LETTERS_TABLE, *letters)
            if token not in self.tokens:
                self.tokens.add(token)
                self.dead_letters.extend(row for part in letters for row in part.dead_letters)
        token = dedup_token(REQUESTS_TABLE, *fresh)
        if token in self.tokens:
            # ClickHouse acknowledges a deduplicated insert like any other.
            self.deduplicated += 1
        else:
            self.tokens.add(token)
            self.rows.extend(row for part in fresh for row in part.rows)
            for part in fresh:
                self.offsets.setdefault((part.topic, part.partition), set()).update(part.offsets)
            self.inserts += 1
        for part in fresh:
            key = (part.topic, part.partition)
            self.high_water[key] = max(self.high_water.get(key, -1), part.last_offset)

    def _unstored(self, chunk: PartitionRows) -> PartitionRows | None:
        # As ClickHouseSink: below the mark, only offsets the "table" holds are skipped.
        key = (chunk.topic, chunk.partition)
        if chunk.first_offset > self.high_water.get(key, -1):
            return chunk
        return chunk.without(self.offsets.get(key, set()))

    async def ping(self) -> None:
        return None

    def forget_positions(self) -> None:
        return None

    async def close(self) -> None:
        return None
