"""Faust tables whose changelogs are topics declared in ``topics/``, on the bounded store.

Faust names a changelog ``<app id>-<table>-changelog`` and creates it itself;
this worker never lets Faust create topics (see docs/architecture.md), so each
table here is given its declared topic as its changelog, with the serializers
and flags Faust's own changelog topics get (raw bytes, no acknowledgements:
changelog offsets live in RocksDB, not in the consumer group).
"""

from __future__ import annotations

from typing import Any, cast

import faust

from worker.intake import raw_topic
from worker.state.rocksdb import BoundedRocksStore, MemoryBudget


def changelog_topic(app: Any, name: str, partitions: int) -> Any:
    """A Faust topic for a table changelog declared as ``name``."""
    return raw_topic(
        app,
        name,
        partitions=partitions,
        compacting=True,
        acks=False,
        internal=True,
        # As Faust's changelogs: a large buffer, since changelog reads are not committed.
        maxsize=131_072,
    )


class DeclaredTable(faust.Table[bytes, bytes]):
    """A partitioned table of bytes on :class:`BoundedRocksStore`; its changelog is declared."""

    def __init__(
        self,
        app: Any,
        *,
        name: str,
        topic: str,
        partitions: int,
        budget: MemoryBudget,
        **kwargs: Any,
    ) -> None:
        self._budget = budget
        self._declared_topic = topic
        super().__init__(
            app,
            name=name,
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            changelog_topic=changelog_topic(app, topic, partitions),
            beacon=app.tables.beacon,
            **kwargs,
        )

    def _changelog_topic_name(self) -> str:
        # Faust's assignor asks global tables for this name; keep it the declared one.
        return self._declared_topic

    def _new_store(self) -> BoundedRocksStore:
        return BoundedRocksStore(
            "rocksdb://",
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            options=self.options,
            budget=self._budget,
        )

    @property
    def store(self) -> BoundedRocksStore:
        """The table's RocksDB store (one database per partition)."""
        return cast(BoundedRocksStore, self.data)


class DeclaredGlobalTable(DeclaredTable, faust.GlobalTable):
    """A table every worker holds in full, fed from a declared (compacted) topic.

    ``recovery_buffer_size=1`` is Faust's advice for global tables read by several
    workers (see ``faust.GlobalTable``); it also makes Faust keep reading the
    topic after recovery where a worker holds the partition as an active.
    """

    def __init__(self, app: Any, **kwargs: Any) -> None:
        kwargs.setdefault("recovery_buffer_size", 1)
        super().__init__(app, is_global=True, standby_buffer_size=1, **kwargs)
