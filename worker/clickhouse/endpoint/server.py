"""The ClickHouse HTTP interface, read-only, over a :class:`QueryBackend`.

It speaks as much of ClickHouse's HTTP protocol as clients need to work unchanged
(clickhouse-connect's ``get_client(host=..., port=...)``, curl, dashboards):

- ``GET /ping`` and ``GET /`` without a query answer ``Ok.``, without credentials;
- a query comes in the ``query`` URL parameter, the body, or both (concatenated),
  or as the ``query`` field of a ``multipart/form-data`` body; ``param_<name>``
  binds ``{name:Type}``; ``database`` (or ``X-ClickHouse-Database``) and
  ``default_format`` (or ``X-ClickHouse-Format``) choose the database and the format
  when the SQL names none; other parameters are settings (``limits.py``);
- answers carry ``X-ClickHouse-Query-Id``, ``-Format``, ``-Timezone``, ``-Summary``
  and ``-Server-Display-Name``; errors carry ClickHouse's text, its HTTP status and
  ``X-ClickHouse-Exception-Code``.

Results are complete before the answer starts (as with ``wait_end_of_query=1``):
they are bounded by ``max_result_rows``/``max_result_bytes``, and an error is
always an HTTP status, never a truncated body. Responses are not compressed.

:class:`QueryRunner` bounds the engine's share: at most ``max_concurrent_queries``
queries run, each on a thread of the endpoint's own pool; more wait up to
``queue_timeout_s`` for a slot, then get ``TOO_MANY_SIMULTANEOUS_QUERIES``. A query
whose client disconnects is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from worker.clickhouse.endpoint.auth import Authenticator, presented
from worker.clickhouse.endpoint.backend import (
    DEFAULT_FORMAT,
    TAG_PREFIX,
    QueryBackend,
    Result,
    Statement,
)
from worker.clickhouse.endpoint.errors import (
    ABORTED,
    BAD_ARGUMENTS,
    NOT_IMPLEMENTED,
    QUERY_IS_TOO_LARGE,
    READONLY,
    STD_EXCEPTION,
    SYNTAX_ERROR,
    TOO_MANY_SIMULTANEOUS_QUERIES,
    UNKNOWN_FORMAT,
    ClickHouseError,
)
from worker.clickhouse.endpoint.limits import QueryLimits, split_params

log = logging.getLogger(__name__)

OK = "Ok.\n"
_FORMAT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MAX_QUERY_ID = 256
_BINARY_FORMATS = (
    "Native",
    "RowBinary",
    "Parquet",
    "Arrow",
    "ORC",
    "Avro",
    "Protobuf",
    "CapnProto",
    "MsgPack",
    "BSONEachRow",
    "RawBLOB",
    "Npy",
)


class QueryRunner:
    """Runs statements on the backend within the concurrency bound, off the event loop."""

    def __init__(
        self, backend: QueryBackend, *, max_concurrent: int, queue_timeout_s: float
    ) -> None:
        self._backend = backend
        self._max_concurrent = max_concurrent
        self._queue_timeout_s = queue_timeout_s
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="clickhouse-http"
        )
        self._slots = asyncio.Semaphore(max_concurrent)
        self._running: set[asyncio.Future[Result]] = set()
        self._closing = False

    async def run(self, statement: Statement) -> Result:
        if self._closing:
            raise ClickHouseError(ABORTED, "The worker is shutting down.")
        try:
            async with asyncio.timeout(self._queue_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise ClickHouseError(
                TOO_MANY_SIMULTANEOUS_QUERIES,
                f"Too many simultaneous queries. Maximum: {self._max_concurrent}.",
            ) from None
        loop = asyncio.get_running_loop()
        # The slot is released when the engine is done, not when the client is gone.
        future = loop.run_in_executor(self._executor, self._backend.execute, statement)
        self._running.add(future)
        future.add_done_callback(self._finished)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if not future.done():
                # The client went away: stop the query instead of letting it run to its limit.
                loop.run_in_executor(None, self._backend.cancel, statement.tag)
            raise

    def _finished(self, future: asyncio.Future[Result]) -> None:
        self._running.discard(future)
        self._slots.release()
        if not future.cancelled():
            future.exception()  # retrieved here, in case its handler was cancelled

    async def close(self, grace_s: float) -> None:
        """Refuse new queries, cancel the running ones, and wait for them (up to ``grace_s``)."""
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self._running and loop.time() < deadline:
            await loop.run_in_executor(None, self._backend.cancel, None)
            if self._running:
                await asyncio.wait(set(self._running), timeout=0.2)
        if self._running:
            log.warning("%d analyst queries still running at shutdown", len(self._running))
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """What the HTTP layer needs besides the backend."""

    authenticator: Authenticator
    limits: QueryLimits
    database: str
    display_name: str


def make_app(backend: QueryBackend, runner: QueryRunner, config: EndpointConfig) -> web.Application:
    """The aiohttp application of the endpoint."""
    handler = _Handler(backend, runner, config)
    app = web.Application(client_max_size=config.limits.max_query_size + 64 * 1024)
    app.router.add_get("/ping", handler.ping)
    app.router.add_route("GET", "/", handler.query)
    app.router.add_route("POST", "/", handler.query)
    app.router.add_route("*", "/{tail:.*}", handler.not_found)
    return app


class _Handler:
    def __init__(self, backend: QueryBackend, runner: QueryRunner, config: EndpointConfig) -> None:
        self._backend = backend
        self._runner = runner
        self._config = config

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text=OK)

    async def not_found(self, request: web.Request) -> web.Response:
        return web.Response(
            status=404,
            text=f"There is no handle {request.path}\n\nUse / or /ping for health checks.\n",
        )

    async def query(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and "query" not in request.query:
            return web.Response(text=OK)
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        user = ""
        try:
            user = self._config.authenticator.authenticate(
                presented(request.headers, request.query)
            )
            sql, params = await _read_query(request, user, self._config.limits.max_query_size)
            statement = self._statement(request, sql, params, user=user, query_id=query_id)
            result = await self._runner.run(statement)
        except ClickHouseError as error:
            return self._error(error.for_user(user) if user else error, query_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The client still gets ClickHouse's error shape; the operator gets the traceback.
            log.exception("analyst query %s failed unexpectedly", query_id)
            unexpected = ClickHouseError(STD_EXCEPTION, str(exc) or type(exc).__name__)
            return self._error(unexpected, query_id)
        timezone = statement.settings.get("session_timezone") or self._backend.timezone
        return web.Response(
            body=result.body,
            headers={
                **self._common(query_id),
                "Content-Type": content_type(result.output_format),
                "X-ClickHouse-Format": result.output_format,
                "X-ClickHouse-Timezone": timezone,
                "X-ClickHouse-Summary": summary(result).decode(),
            },
        )

    def _statement(
        self, request: web.Request, sql: str, params: Mapping[str, str], *, user: str, query_id: str
    ) -> Statement:
        if len(query_id) > _MAX_QUERY_ID:
            raise ClickHouseError(BAD_ARGUMENTS, f"query_id is longer than {_MAX_QUERY_ID} bytes.")
        headers = request.headers
        default_format = (
            params.get("default_format") or headers.get("X-ClickHouse-Format") or DEFAULT_FORMAT
        )
        if not _FORMAT_NAME.match(default_format):
            raise ClickHouseError(UNKNOWN_FORMAT, f"Unknown format {default_format}.")
        bound, requested = split_params(params)
        tag = f"{TAG_PREFIX}{uuid.uuid4().hex}"
        return Statement(
            sql=sql,
            user=user,
            query_id=query_id,
            tag=tag,
            database=(
                params.get("database")
                or headers.get("X-ClickHouse-Database")
                or self._config.database
            ),
            default_format=default_format,
            params=bound,
            settings=self._config.limits.session_settings(requested, tag=tag),
        )

    def _common(self, query_id: str) -> dict[str, str]:
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": self._config.display_name,
        }

    def _error(self, error: ClickHouseError, query_id: str) -> web.Response:
        headers = {
            **self._common(query_id),
            "X-ClickHouse-Exception-Code": str(error.number),
            "Content-Type": "text/plain; charset=UTF-8",
        }
        if error.http_status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="ClickHouse"'
        return web.Response(
            status=error.http_status, text=error.body(self._backend.version), headers=headers
        )


async def _read_query(
    request: web.Request, user: str, max_query_size: int
) -> tuple[str, dict[str, str]]:
    """The SQL and the parameters of a request (URL parameters, and form fields if any)."""
    params = dict(request.query)
    head = params.get("query", "")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Clients compress the bodies of inserts (clickhouse-connect always does), never
        # queries: a compressed body is data to write, and this endpoint only reads.
        raise ClickHouseError(
            READONLY,
            f"{user}: Cannot execute query in readonly mode: a {encoding}-compressed body "
            "carries data to insert.",
        )
    try:
        if request.content_type == "multipart/form-data":
            fields = await _form_fields(request)
            params.update(fields)
            body = fields.get("query", "")
            head = "" if "query" in fields else head
        else:
            body = (await request.read()).decode()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(max_query_size) from None
    except UnicodeDecodeError:
        raise ClickHouseError(BAD_ARGUMENTS, "The query is not valid UTF-8.") from None
    sql = f"{head}\n{body}" if head and body else head or body
    if len(sql.encode()) > max_query_size:
        raise _too_large(max_query_size)
    if not sql.strip():
        raise ClickHouseError(SYNTAX_ERROR, "Empty query.")
    return sql, params


async def _form_fields(request: web.Request) -> dict[str, str]:
    fields: dict[str, str] = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.filename is not None or part.name is None:
            raise ClickHouseError(
                NOT_IMPLEMENTED, "External data (file parts) is not supported by this endpoint."
            )
        fields[part.name] = await part.text()
    return fields


def _too_large(limit: int) -> ClickHouseError:
    return ClickHouseError(QUERY_IS_TOO_LARGE, f"The query is larger than {limit} bytes.")


def summary(result: Result) -> bytes:
    """The ``X-ClickHouse-Summary`` header: ClickHouse's counters, as strings."""
    values: dict[str, Any] = {
        "read_rows": result.read_rows,
        "read_bytes": result.read_bytes,
        "written_rows": 0,
        "written_bytes": 0,
        "total_rows_to_read": result.read_rows,
        "result_bytes": len(result.body),
        "elapsed_ns": result.elapsed_ns,
    }
    return orjson.dumps({name: str(value) for name, value in values.items()})


def content_type(output_format: str) -> str:
    """The Content-Type ClickHouse gives a format's output."""
    name = output_format.lower()
    if output_format.startswith(_BINARY_FORMATS):
        kind = "application/octet-stream"
    elif name.startswith(("tabseparated", "tsv")):
        kind = "text/tab-separated-values; charset=UTF-8"
    elif name.startswith("csv"):
        kind = "text/csv; charset=UTF-8; header=" + ("present" if "withnames" in name else "absent")
    elif "eachrow" in name or name in ("jsonlines", "ndjson"):
        kind = "application/x-ndjson; charset=UTF-8"
    elif name.startswith("json"):
        kind = "application/json; charset=UTF-8"
    elif name == "xml":
        kind = "application/xml; charset=UTF-8"
    else:
        kind = "text/plain; charset=UTF-8"
    return kind
