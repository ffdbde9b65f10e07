"""Analyst queries on the worker's embedded chDB, each in a fresh read-only session.

chDB hosts one engine per process, on one directory, and lets any number of
connections (sessions) share it; queries on different connections run in
parallel and release the GIL while they run. The sink keeps its own connection
on its own thread. Each analyst query opens a connection of its own (about 0.1 ms),
so no session state (settings, ``USE``) survives from one query to the next:

1. ``SET`` the query's settings, ``readonly=1`` last (``limits.py``);
2. render the SQL with ``formatQuerySingleLine`` and inspect it (``statements.py``);
3. ``USE`` the requested database and run the SQL, in the requested format;
4. close the connection.

A connection of the endpoint's own, opened at start and never read-only, issues
``KILL QUERY`` for queries whose client went away and for every running analyst
query at shutdown; it finds them by their ``log_comment``, which clients cannot set.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import chdb

from worker.clickhouse.endpoint.backend import TAG_PREFIX, Result, Statement
from worker.clickhouse.endpoint.errors import QUERY_WAS_CANCELLED, UNKNOWN_FORMAT, ClickHouseError
from worker.clickhouse.endpoint.statements import inspect

log = logging.getLogger(__name__)

# Output "formats" that chDB's Python layer turns into Python objects instead of bytes.
_PYTHON_FORMATS = frozenset({"dataframe", "arrowtable", "datastore"})
_RENDER_SCOPE = "In scope SELECT formatQuerySingleLine("
# chDB ships no annotations for connect(); a chdb.state Connection comes back.
_connect: Callable[[str], Any] = chdb.connect


class ChdbBackend:
    """A :class:`~worker.clickhouse.endpoint.backend.QueryBackend` on embedded chDB."""

    def __init__(self, path: Path) -> None:
        # chDB compares engine paths literally: use the spelling the sink's client uses.
        self._path = os.path.realpath(path)
        self._control: Any = None
        self._control_lock = threading.Lock()
        # Cancellations may arrive before their query reached the engine: remembered
        # for the queries in progress, checked just before the SQL runs.
        self._state_lock = threading.Lock()
        self._active: set[str] = set()
        self._cancelled: set[str] = set()
        self._stopping = False
        self._version = ""
        self._timezone = "UTC"

    @property
    def version(self) -> str:
        return self._version

    @property
    def timezone(self) -> str:
        return self._timezone

    def start(self) -> None:
        self._control = _connect(self._path)
        version, timezone = _text(self._control.query("SELECT version(), timezone()", "TSV"))
        self._version, self._timezone = version, timezone

    def execute(self, statement: Statement) -> Result:
        if statement.default_format.lower() in _PYTHON_FORMATS:
            raise ClickHouseError(UNKNOWN_FORMAT, f"Unknown format {statement.default_format}.")
        with self._state_lock:
            self._active.add(statement.tag)
        connection = _connect(self._path)
        try:
            connection.query(set_statement(statement.settings), "TSV")
            shape = inspect(self._render(connection, statement.sql), statement.user)
            if statement.database:
                connection.query(f"USE {quote_identifier(statement.database)}", "TSV")
            self._raise_if_cancelled(statement.tag)
            result = connection.query(
                statement.sql, statement.default_format, params=dict(statement.params)
            )
            return Result(
                body=bytes(result.bytes()),
                output_format=shape.output_format or statement.default_format,
                read_rows=int(result.rows_read()),
                read_bytes=int(result.bytes_read()),
                elapsed_ns=int(result.elapsed() * 1e9),
            )
        except RuntimeError as exc:
            self._raise_if_cancelled(statement.tag)
            raise ClickHouseError.parse(str(exc)).for_user(statement.user) from None
        except ClickHouseError:
            # A KILL QUERY that lands between two of the session's statements can
            # make the next one fail with another error (READONLY, seen here):
            # what the client asked for was the cancellation, and that is the answer.
            self._raise_if_cancelled(statement.tag)
            raise
        finally:
            connection.close()
            with self._state_lock:
                self._active.discard(statement.tag)
                self._cancelled.discard(statement.tag)

    def _raise_if_cancelled(self, tag: str) -> None:
        with self._state_lock:
            if self._stopping or tag in self._cancelled:
                raise ClickHouseError(QUERY_WAS_CANCELLED, "Query was cancelled.")

    @staticmethod
    def _render(connection: Any, sql: str) -> str:
        # ClickHouse's parser decides what the text is: one statement, rendered canonically.
        try:
            rendered = connection.query(
                "SELECT formatQuerySingleLine({sql:String})",
                "TabSeparatedRaw",
                params={"sql": escape_param(sql)},
            )
        except RuntimeError as exc:
            # A syntax error, reported as the query's own (positions are the same).
            error = ClickHouseError.parse(str(exc))
            text = error.text.split(_RENDER_SCOPE, 1)[0].rstrip(" :.")
            raise ClickHouseError(error.number, f"{text}.", error.name) from None
        return bytes(rendered.bytes()).decode().removesuffix("\n")

    def cancel(self, tag: str | None = None) -> None:
        if tag is None:
            condition = f"startsWith(Settings['log_comment'], {quote_string(TAG_PREFIX)})"
        else:
            condition = f"Settings['log_comment'] = {quote_string(tag)}"
        with self._state_lock:
            if tag is None:
                self._stopping = True
            elif tag in self._active:
                self._cancelled.add(tag)
        with self._control_lock:
            if self._control is None:
                return
            try:
                self._control.query(f"KILL QUERY WHERE {condition} SYNC", "TSV")
            except RuntimeError as exc:
                log.warning("could not cancel analyst queries: %s", exc)

    def close(self) -> None:
        with self._control_lock:
            control, self._control = self._control, None
        if control is not None:
            control.close()


def set_statement(settings: Mapping[str, str]) -> str:
    """One ``SET`` of every setting, in order, each value a quoted literal."""
    return "SET " + ", ".join(f"{name} = {quote_string(value)}" for name, value in settings.items())


def quote_string(value: str) -> str:
    """A ClickHouse string literal: only backslash and quote are special inside one."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def escape_param(value: str) -> str:
    """A String query parameter in ClickHouse's escaped text form (as HTTP ``param_`` values)."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def _text(result: Any) -> list[str]:
    return bytes(result.bytes()).decode().rstrip("\n").split("\t")
