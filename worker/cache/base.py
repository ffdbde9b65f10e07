"""The cache's storage port: two key spaces per partition, entries and the tag index.

The store knows nothing about expiry, tags or tenants; :class:`worker.cache.service.ResultCache`
does. A store holds, for each partition of the requests topic, the entries
(cache key -> encoded :class:`~worker.cache.entries.CacheEntry`) and the tag
index (``tag NUL key`` -> expiry), and says which partitions this process owns
right now: only the owner of a partition reads or writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

#: The two key spaces of a partition.
Space = Literal["entries", "index"]


class CacheStore(Protocol):
    """Per-partition key-value storage of the result cache."""

    @property
    def partitions(self) -> int:
        """How many partitions the key space is split into (those of the requests topic)."""

    def owned(self) -> frozenset[int]:
        """The partitions this process may read and write now."""

    def get_many(self, partition: int, space: Space, keys: Sequence[str]) -> list[bytes | None]:
        """The stored values of ``keys``, None where absent; one round of local reads."""

    async def put_many(self, partition: int, writes: Sequence[tuple[Space, str, bytes]]) -> None:
        """Store every write, locally and in the changelog.

        Returns once the changelog records are handed to the producer, without
        waiting for the broker: a lost write is only a future miss.
        """

    async def delete_many(self, partition: int, deletes: Sequence[tuple[Space, str]]) -> None:
        """Remove keys: tombstones go to the changelog and are confirmed, then local data goes.

        In that order, so that a crash in between leaves the keys in place for
        the retried invalidation to find again, and a restore from the
        changelog never brings back what was removed.
        """

    def scan(
        self, partition: int, space: Space, *, start: str = "", prefix: str = "", limit: int
    ) -> list[tuple[str, bytes]]:
        """Up to ``limit`` pairs in key order, from ``start`` on, with keys under ``prefix``."""

    def count(self, partition: int) -> int:
        """About how many entries ``partition`` holds (an estimate is fine)."""
