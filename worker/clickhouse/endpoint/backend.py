"""The port between the HTTP endpoint and the engine that runs analyst queries.

:class:`QueryBackend` is synchronous: the endpoint calls :meth:`~QueryBackend.execute`
on its own small thread pool, one thread per allowed concurrent query, never on the
event loop and never on the sink's thread. ``ChdbBackend`` (``chdb_backend.py``) runs the
queries on the worker's embedded chDB; ``MemoryBackend`` (``memory.py``) answers
from a function, for tests of everything around the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

DEFAULT_FORMAT = "TabSeparated"
# Every analyst query's ``log_comment`` starts so; no client can set that setting.
TAG_PREFIX = "clickhouse-http "


@dataclass(frozen=True, slots=True)
class Statement:
    """One analyst query, as the endpoint hands it to the engine."""

    sql: str
    user: str
    query_id: str
    # The query's ``log_comment``: marks it as the endpoint's, to find it when cancelling.
    tag: str
    database: str
    default_format: str = DEFAULT_FORMAT
    params: Mapping[str, str] = field(default_factory=dict)
    # The session's settings, ``readonly=1`` last (``QueryLimits.session_settings``).
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Result:
    """A query's complete output in its format, and the figures for the summary header."""

    body: bytes
    output_format: str
    read_rows: int = 0
    read_bytes: int = 0
    elapsed_ns: int = 0
    timezone: str | None = None


class QueryBackend(Protocol):
    """Runs read-only analyst queries. Errors are ``ClickHouseError``s."""

    @property
    def version(self) -> str:
        """The engine's ClickHouse version, as ``SELECT version()`` reports it."""

    @property
    def timezone(self) -> str:
        """The engine's time zone, as ``SELECT timezone()`` reports it."""

    def start(self) -> None:
        """Prepare; called once, on a worker thread, before the first query."""

    def execute(self, statement: Statement) -> Result:
        """Run one statement to completion (blocking)."""

    def cancel(self, tag: str | None = None) -> None:
        """Stop the running query tagged ``tag``, or every query of the endpoint (blocking)."""

    def close(self) -> None:
        """Release the engine; no query runs any more."""
