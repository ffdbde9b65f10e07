"""Injected ClickHouse latency, for the tests of graceful shutdown and stall detection.

Switched on by ``WORKER_FAULT_CLICKHOUSE_INSERT_DELAY_S`` (never in production):
every insert first waits that long on the sink's thread, as an insert into a
slow or overloaded server would, so the batch's rows stay buffered meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class DelayedInserts:
    """A clickhouse-connect client whose ``insert`` waits ``delay_s`` before it runs."""

    def __init__(self, client: Any, delay_s: float) -> None:
        self._client = client
        self._delay_s = delay_s

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self._delay_s)
        return self._client.insert(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def with_insert_delay(connect: Callable[[], Any], delay_s: float) -> Callable[[], Any]:
    """``connect``, returning clients with delayed inserts when ``delay_s`` is positive."""
    if delay_s <= 0:
        return connect
    return lambda: DelayedInserts(connect(), delay_s)
