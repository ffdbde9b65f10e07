"""Fault injection for the reliability tests, switched on by ``WORKER_FAULT_*`` settings.

Two kinds, both inert unless configured (see :class:`~worker.settings.FaultSettings`):

- **Kill points.** :meth:`FaultInjector.reached` is called as each batch passes a
  point of delivery (``before_insert``, ``after_insert``, ``after_publish``,
  ``after_ack``). At the configured point, once ``after_batches`` batches have
  passed it, the process sends itself SIGKILL: no ``finally``, no flush, no
  commit, exactly like the OOM killer or a lost machine.
- **ClickHouse outage.** :meth:`FaultInjector.clickhouse` wraps the client
  factory; while the configured file exists, every call fails the way a real
  outage or an overloaded server would, so a test can switch ClickHouse off and
  on again by creating and removing a file.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.exceptions import DatabaseError as ClickHouseDatabaseError
from clickhouse_connect.driver.exceptions import OperationalError

from worker.settings import FaultPoint, FaultSettings

log = logging.getLogger(__name__)


def _sigkill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultInjector:
    """Kills the process at a configured point of delivery; a no-op when none is set."""

    def __init__(
        self, settings: FaultSettings, *, kill: Callable[[], None] = _sigkill_self
    ) -> None:
        self._settings = settings
        self._kill = kill
        self.passed = 0

    def reached(self, point: FaultPoint) -> None:
        """A batch reached ``point``; kill the process if that is the configured fault."""
        if point != self._settings.point:
            return
        if self.passed < self._settings.after_batches:
            self.passed += 1
            return
        log.error(
            "fault injection: batch %d reached %s, killing the worker with SIGKILL",
            self.passed + 1,
            point,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._kill()

    def clickhouse(self, connect: Callable[[], Any]) -> Callable[[], Any]:
        """``connect``, with every client call failing while the outage file exists."""
        down_file = self._settings.clickhouse_down_file
        if down_file is None:
            return connect
        return lambda: ClickHouseOutage(connect(), down_file)


#: What the outage file may contain, and the error each content raises.
_FAILURES: dict[str, Callable[[Path], Exception]] = {
    "": lambda path: OperationalError(
        f"Error HTTPConnectionPool: Connection refused (fault injection: {path} exists)"
    ),
    "too_many_parts": lambda path: ClickHouseDatabaseError(
        "Code: 252. DB::Exception: Too many parts (3001 with average size of 1.00 KiB) "
        f"in table. Merges are processing significantly slower than inserts. (TOO_MANY_PARTS) "
        f"(fault injection: {path} exists)"
    ),
    "memory_limit_exceeded": lambda path: ClickHouseDatabaseError(
        "Code: 241. DB::Exception: Memory limit (for query) exceeded. (MEMORY_LIMIT_EXCEEDED) "
        f"(fault injection: {path} exists)"
    ),
}


class ClickHouseOutage:
    """A clickhouse-connect client whose calls fail while ``down_file`` exists."""

    _CALLS = frozenset({"insert", "query", "command"})

    def __init__(self, client: Any, down_file: Path) -> None:
        self._client = client
        self._down_file = down_file

    def _check(self) -> None:
        try:
            kind = self._down_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return
        raise _FAILURES.get(kind, _FAILURES[""])(self._down_file)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in self._CALLS:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._check()
            return attribute(*args, **kwargs)

        return call
