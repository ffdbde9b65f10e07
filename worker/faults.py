"""Fault injection for the reliability tests, switched on by ``WORKER_FAULT_*`` settings.

Three kinds, all inert unless configured (see :class:`~worker.settings.FaultSettings`):

- **Kill points.** :meth:`FaultInjector.reached` is called as each batch passes a
  point of delivery (``before_insert``, ``after_insert``, ``after_publish``,
  ``after_ack``). At the configured point, once ``after_batches`` batches have
  passed it, the process sends itself SIGKILL: no ``finally``, no flush, no
  commit, exactly like the OOM killer or a lost machine.
- **ClickHouse outage.** :meth:`FaultInjector.clickhouse` wraps the client
  factory; while the configured file exists, every call fails the way a real
  outage or an overloaded server would, so a test can switch ClickHouse off and
  on again by creating and removing a file.
- **Failing operations.** :meth:`FaultInjector.operations` swaps each named
  operation for one whose every call raises, as an operation whose own backend
  is unreachable would: the flow's ``service_failed``, retried and then
  dead-lettered. The other operations are left as they are.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.exceptions import DatabaseError as ClickHouseDatabaseError
from clickhouse_connect.driver.exceptions import OperationalError

from worker.errors import ConfigurationError
from worker.operations.base import Operation
from worker.operations.registry import OperationRegistry
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

    def operations(self, registry: OperationRegistry) -> OperationRegistry:
        """``registry``, with each operation named in ``failing_operations`` always failing."""
        names = self._settings.failing_operation_names
        if not names:
            return registry
        unknown = names - set(registry.names())
        if unknown:
            raise ConfigurationError(
                f"WORKER_FAULT_FAILING_OPERATIONS names unknown operations: {sorted(unknown)}"
            )
        log.warning("fault injection: operations %s fail on every call", sorted(names))
        return OperationRegistry(
            failing(operation) if operation.name in names else operation for operation in registry
        )

    def clickhouse(self, connect: Callable[[], Any]) -> Callable[[], Any]:
        """``connect``, with every client call failing while the outage file exists."""
        down_file = self._settings.clickhouse_down_file
        if down_file is None:
            return connect
        return lambda: ClickHouseOutage(connect(), down_file)


def failing(operation: Operation[Any, Any]) -> Operation[Any, Any]:
    """``operation`` as seen from outside (name, scopes, models, cache), failing every call."""
    inner = operation

    class Failing(Operation[Any, Any]):
        name = inner.name
        version = inner.version
        description = inner.description
        scopes = inner.scopes
        params_model = inner.params_model
        result_model = inner.result_model
        cache_ttl_s = inner.cache_ttl_s
        cache_not_found_ttl_s = inner.cache_not_found_ttl_s

        def cache_dependencies(
            self, tenant_params: Sequence[tuple[str, Any]]
        ) -> Sequence[Mapping[str, str]]:
            return inner.cache_dependencies(tenant_params)

        async def handle(self, tenant_params: Sequence[tuple[str, Any]]) -> Sequence[Any]:
            raise ConnectionError(
                f"{inner.name}: its backend is unreachable "
                "(fault injection: WORKER_FAULT_FAILING_OPERATIONS)"
            )

    return Failing()


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
