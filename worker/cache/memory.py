"""The cache store in memory: dictionaries per partition, for tests and the broker-free harness."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from worker.cache.base import Space


class MemoryCacheStore:
    """A :class:`~worker.cache.base.CacheStore` in dictionaries; owns every partition by default.

    ``tombstones`` lists every removal in order, as the changelog would see them.
    """

    def __init__(self, partitions: int = 4, owned: Iterable[int] | None = None) -> None:
        self._partitions = partitions
        self._owned = frozenset(range(partitions) if owned is None else owned)
        self._data: dict[tuple[int, Space], dict[str, bytes]] = {}
        self.tombstones: list[tuple[int, Space, str]] = []

    @property
    def partitions(self) -> int:
        return self._partitions

    def owned(self) -> frozenset[int]:
        return self._owned

    def assign(self, partitions: Iterable[int]) -> None:
        """Own ``partitions`` from now on (a rebalance)."""
        self._owned = frozenset(partitions)

    def _space(self, partition: int, space: Space) -> dict[str, bytes]:
        return self._data.setdefault((partition, space), {})

    def get_many(self, partition: int, space: Space, keys: Sequence[str]) -> list[bytes | None]:
        data = self._space(partition, space)
        return [data.get(key) for key in keys]

    async def put_many(self, partition: int, writes: Sequence[tuple[Space, str, bytes]]) -> None:
        for space, key, value in writes:
            self._space(partition, space)[key] = value

    async def delete_many(self, partition: int, deletes: Sequence[tuple[Space, str]]) -> None:
        for space, key in deletes:
            self.tombstones.append((partition, space, key))
            self._space(partition, space).pop(key, None)

    def scan(
        self, partition: int, space: Space, *, start: str = "", prefix: str = "", limit: int
    ) -> list[tuple[str, bytes]]:
        data = self._space(partition, space)
        keys = sorted(data)
        found: list[tuple[str, bytes]] = []
        for key in keys[bisect.bisect_left(keys, max(start, prefix)) :]:
            if len(found) >= limit or not key.startswith(prefix):
                break
            found.append((key, data[key]))
        return found

    def count(self, partition: int) -> int:
        return len(self._space(partition, "entries"))
