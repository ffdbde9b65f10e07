"""A query backend that answers from a function: the endpoint without an engine.

Like ``httpx.MockTransport``, it takes a handler that receives each
:class:`~worker.clickhouse.endpoint.backend.Statement` and returns a
:class:`~worker.clickhouse.endpoint.backend.Result` (or raises a
``ClickHouseError``). Tests of request parsing, authentication, limits and
concurrency use it; it records every statement it was given and every
cancellation it was asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from worker.clickhouse.endpoint.backend import Result, Statement

Handler = Callable[[Statement], Result]


def echo(statement: Statement) -> Result:
    """The default handler: the SQL itself as a one-row TabSeparated result."""
    return Result(body=statement.sql.encode() + b"\n", output_format=statement.default_format)


class Gate:
    """A handler that holds every statement until :meth:`open`, like a long query.

    ``entered`` is set once a statement is inside; tests of waiting for a slot,
    of hanging up and of shutting down use it to know a query is running.
    """

    def __init__(self, then: Handler = echo) -> None:
        self._then = then
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self, statement: Statement) -> Result:
        self.entered.set()
        self.opened.wait(timeout=60)
        return self._then(statement)

    def open(self) -> None:
        self.opened.set()


class MemoryBackend:
    """A :class:`~worker.clickhouse.endpoint.backend.QueryBackend` that calls ``handler``."""

    def __init__(
        self, handler: Handler = echo, *, version: str = "26.9.2.1", timezone: str = "UTC"
    ) -> None:
        self._handler = handler
        self._version = version
        self._timezone = timezone
        self._lock = threading.Lock()
        self.statements: list[Statement] = []
        self.cancelled: list[str | None] = []
        self.started = False
        self.closed = False

    @property
    def version(self) -> str:
        return self._version

    @property
    def timezone(self) -> str:
        return self._timezone

    def start(self) -> None:
        self.started = True

    def execute(self, statement: Statement) -> Result:
        with self._lock:
            self.statements.append(statement)
        return self._handler(statement)

    def cancel(self, tag: str | None = None) -> None:
        with self._lock:
            self.cancelled.append(tag)

    def close(self) -> None:
        self.closed = True
