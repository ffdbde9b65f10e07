"""Injected ClickHouse latency, for the tests of graceful shutdown and stall detection.

Switched on by ``WORKER_FAULT_CLICKHOUSE_INSERT_DELAY_S`` (never in production):
every insert into the table of request rows first waits that long on the sink's
thread, as an insert into a slow or overloaded server would, so the batch's rows
stay buffered meanwhile. Migrations and queries are not delayed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class DelayedInserts:
    """A clickhouse-connect client whose inserts into ``table`` wait ``delay_s`` first."""

    def __init__(self, client: Any, table: str, delay_s: float) -> None:
        self._client = client
        self._table = table
        self._delay_s = delay_s

    def insert(self, table: str | None = None, *args: Any, **kwargs: Any) -> Any:
        # An insert through a reusable context names its table in the context.
        context = kwargs.get("context")
        name = table if table is not None or context is None else context.table
        if name == self._table:
            time.sleep(self._delay_s)
        return self._client.insert(table, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def with_insert_delay(connect: Callable[[], Any], table: str, delay_s: float) -> Callable[[], Any]:
    """``connect``, returning clients whose inserts into ``table`` wait ``delay_s`` (if > 0)."""
    if delay_s <= 0:
        return connect
    return lambda: DelayedInserts(connect(), table, delay_s)
