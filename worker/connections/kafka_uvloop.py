"""aiokafka on uvloop: a write to a connection the broker closed is a connection error.

aiokafka writes a request to its connection's transport and turns an
``OSError`` into ``KafkaConnectionError``, which every caller retries. The
standard library's transport, once closed, ignores writes (it logs a warning);
uvloop's raises ``RuntimeError: unable to perform operation on <TCPTransport
closed=True ...>; the handler is closed``. When the broker goes away, a request
can be written in the moment between uvloop closing the transport and aiokafka
noticing it, and that ``RuntimeError`` escapes every ``except KafkaError`` on
the way up (aio-libs/aiokafka#1038). Seen here after a broker restart: it ended
the consumer client's metadata task, every later metadata refresh waited
forever, and with it the group coordinator lookup, so the worker consumed and
answered but never committed again.

:func:`install` makes such a write what it is, a broken connection: the
connection is closed and ``KafkaConnectionError`` raised, as for an
``OSError``. Other ``RuntimeError``\\ s pass unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aiokafka import conn as aiokafka_conn
from aiokafka.errors import KafkaConnectionError

_MARK = "_closed_writes_are_connection_errors"


def _closed(connection: Any) -> bool:
    writer = getattr(connection, "_writer", None)
    transport = getattr(writer, "transport", None)
    return transport is None or bool(transport.is_closing())


def _guarded(write: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(write)
    def guarded(connection: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return write(connection, *args, **kwargs)
        except RuntimeError as exc:
            if not _closed(connection):
                raise
            connection.close(reason=aiokafka_conn.CloseReason.CONNECTION_BROKEN)
            raise KafkaConnectionError(
                f"Connection at {connection.host}:{connection.port} broken: {exc}"
            ) from exc

    setattr(guarded, _MARK, True)
    return guarded


def install() -> None:
    """Guard aiokafka's two writes of a request (idempotent)."""
    connection = aiokafka_conn.AIOKafkaConnection
    for name in ("send", "_send_sasl_token"):
        write = getattr(connection, name)
        if not getattr(write, _MARK, False):
            setattr(connection, name, _guarded(write))
