"""Test doubles for the cache: a clock that moves when told, and a changelog that records."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.state.tables import DeclaredTable

STORES = ("memory", "rocksdb")


@dataclass
class Clock:
    """Time that moves only when a test says so."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _Confirmed:
    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


@dataclass
class RecordingChangelog:
    """Changelog records in send order: ``(table, partition, key, value or None)``.

    With ``fail`` set, sends raise as an unreachable broker would.
    """

    records: list[tuple[str, int, bytes, bytes | None]] = field(default_factory=list)
    fail: bool = False

    async def send(
        self, partition: int, changes: Sequence[tuple[DeclaredTable, bytes, bytes | None]]
    ) -> Any:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.records.extend((table.name, partition, key, value) for table, key, value in changes)
        return _Confirmed()

    def tombstones(self, table: str = "cache-entries") -> list[bytes]:
        return [key for name, _, key, value in self.records if name == table and value is None]
