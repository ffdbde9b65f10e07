"""The HTTP side of the endpoint, on an in-memory backend: parsing, auth, limits, headers."""

from __future__ import annotations

import asyncio
import gzip
from base64 import b64encode
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import test_utils

from worker.clickhouse.endpoint.auth import Authenticator
from worker.clickhouse.endpoint.backend import TAG_PREFIX, Result, Statement
from worker.clickhouse.endpoint.errors import ClickHouseError
from worker.clickhouse.endpoint.limits import QueryLimits
from worker.clickhouse.endpoint.memory import Gate, MemoryBackend
from worker.clickhouse.endpoint.server import EndpointConfig, QueryRunner, content_type, make_app

USER, PASSWORD = "ann", "s3cret"
AUTH = {"Authorization": "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
LIMITS = QueryLimits(
    max_execution_time=30.0,
    max_memory_usage=1 << 30,
    max_result_rows=1000,
    max_result_bytes=1 << 20,
    max_threads=1,
    max_query_size=4096,
)
Serve = Callable[..., Awaitable[test_utils.TestClient[Any, Any]]]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts the endpoint's app on a backend; every client and runner is closed afterwards."""
    started: list[tuple[test_utils.TestClient[Any, Any], QueryRunner]] = []

    async def make(
        backend: MemoryBackend,
        *,
        max_concurrent: int = 2,
        queue_timeout_s: float = 5.0,
        allow_anonymous: bool = False,
    ) -> test_utils.TestClient[Any, Any]:
        runner = QueryRunner(
            backend, max_concurrent=max_concurrent, queue_timeout_s=queue_timeout_s
        )
        config = EndpointConfig(
            authenticator=Authenticator(USER, PASSWORD, allow_anonymous=allow_anonymous),
            limits=LIMITS,
            database="worker",
            display_name="test-host",
        )
        client = test_utils.TestClient(test_utils.TestServer(make_app(backend, runner, config)))
        await client.start_server()
        started.append((client, runner))
        return client

    yield make
    for client, runner in started:
        await runner.close(grace_s=1.0)
        await client.close()


def only(backend: MemoryBackend) -> Statement:
    [statement] = backend.statements
    return statement


@pytest.mark.asyncio
async def test_ping_and_the_root_answer_ok_without_credentials(serve: Serve) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    for path in ("/ping", "/"):
        response = await client.get(path)
        assert (response.status, await response.text()) == (200, "Ok.\n")
    assert backend.statements == []


@pytest.mark.asyncio
async def test_unknown_paths_are_404(serve: Serve) -> None:
    client = await serve(MemoryBackend())
    response = await client.get("/play", headers=AUTH)
    assert response.status == 404
    assert "There is no handle /play" in await response.text()


@pytest.mark.asyncio
async def test_a_query_in_the_body_runs_with_the_defaults(serve: Serve) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    response = await client.post("/", data=b"SELECT 1", headers=AUTH)
    assert response.status == 200
    assert await response.read() == b"SELECT 1\n"
    statement = only(backend)
    assert (statement.sql, statement.user, statement.database) == ("SELECT 1", USER, "worker")
    assert statement.default_format == "TabSeparated"
    assert statement.tag.startswith(TAG_PREFIX)
    assert statement.settings == LIMITS.session_settings({}, tag=statement.tag)
    assert response.headers["X-ClickHouse-Format"] == "TabSeparated"
    assert response.headers["Content-Type"] == "text/tab-separated-values; charset=UTF-8"
    assert response.headers["X-ClickHouse-Timezone"] == "UTC"
    assert response.headers["X-ClickHouse-Server-Display-Name"] == "test-host"
    assert response.headers["X-ClickHouse-Query-Id"]
    summary = orjson.loads(response.headers["X-ClickHouse-Summary"])
    assert summary["result_bytes"] == str(len(b"SELECT 1\n"))
    assert all(isinstance(value, str) for value in summary.values())


@pytest.mark.asyncio
async def test_url_parameters_carry_query_format_database_id_and_bindings(serve: Serve) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    response = await client.get(
        "/",
        params={
            "query": "SELECT {x:String}",
            "param_x": "hello",
            "default_format": "JSONEachRow",
            "database": "system",
            "query_id": "my-query",
            "session_id": "ignored",
            "max_result_rows": "10",
        },
        headers=AUTH,
    )
    assert response.status == 200
    statement = only(backend)
    assert statement.sql == "SELECT {x:String}"
    assert statement.params == {"x": "hello"}
    assert (statement.default_format, statement.database) == ("JSONEachRow", "system")
    assert statement.settings["max_result_rows"] == "10"
    assert response.headers["X-ClickHouse-Query-Id"] == "my-query"
    assert response.headers["Content-Type"] == "application/x-ndjson; charset=UTF-8"


@pytest.mark.asyncio
async def test_the_query_parameter_and_the_body_are_concatenated(serve: Serve) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    response = await client.post(
        "/",
        params={"query": "SELECT"},
        data=b"1 AS x",
        headers={**AUTH, "X-ClickHouse-Format": "CSV"},
    )
    assert response.status == 200
    assert (only(backend).sql, only(backend).default_format) == ("SELECT\n1 AS x", "CSV")


@pytest.mark.asyncio
async def test_a_multipart_form_carries_the_query_and_its_parameters(serve: Serve) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    form = aiohttp.FormData(default_to_multipart=True)  # as clickhouse-connect sends large bindings
    form.add_field("query", "SELECT {big:String}")
    form.add_field("param_big", "x" * 3000)
    response = await client.post("/", data=form, headers=AUTH)
    assert response.status == 200
    assert only(backend).sql == "SELECT {big:String}"
    assert only(backend).params == {"big": "x" * 3000}


@pytest.mark.asyncio
async def test_a_url_encoded_body_is_the_query_itself(serve: Serve) -> None:
    """``curl --data`` sends application/x-www-form-urlencoded; ClickHouse reads it as SQL."""
    backend = MemoryBackend()
    client = await serve(backend)
    response = await client.post(
        "/",
        data=b"SELECT 1 FORMAT JSONEachRow",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 200
    assert only(backend).sql == "SELECT 1 FORMAT JSONEachRow"


@pytest.mark.asyncio
async def test_settings_in_form_fields_are_judged_like_url_parameters(serve: Serve) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("query", "SELECT 1")
    form.add_field("readonly", "0")
    response = await client.post("/", data=form, headers=AUTH)
    assert (response.status, response.headers["X-ClickHouse-Exception-Code"]) == (500, "164")
    assert backend.statements == []


@pytest.mark.asyncio
async def test_external_data_files_are_not_implemented(serve: Serve) -> None:
    client = await serve(MemoryBackend())
    form = aiohttp.FormData()
    form.add_field("query", "SELECT * FROM data")
    form.add_field("data", b"1\n2\n", filename="data.tsv")
    response = await client.post("/", data=form, headers=AUTH)
    assert (response.status, response.headers["X-ClickHouse-Exception-Code"]) == (501, "48")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "194"),
        ({"X-ClickHouse-User": USER, "X-ClickHouse-Key": "wrong"}, 403, "516"),
        ({"Authorization": "Basic " + b64encode(b"mallory:s3cret").decode()}, 403, "516"),
        ({**AUTH, "X-ClickHouse-User": USER, "X-ClickHouse-Key": PASSWORD}, 403, "516"),
    ],
    ids=["none", "wrong-key", "wrong-user", "two-methods"],
)
async def test_bad_credentials_are_refused_as_clickhouse_does(
    serve: Serve, headers: dict[str, str], status: int, code: str
) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    response = await client.post("/", data=b"SELECT 1", headers=headers)
    assert response.status == status
    assert response.headers["X-ClickHouse-Exception-Code"] == code
    body = await response.text()
    assert body.startswith(f"Code: {code}. DB::Exception: ")
    assert body.endswith(f"(version {backend.version})\n")
    assert backend.statements == []


@pytest.mark.asyncio
async def test_credentials_in_url_parameters_are_accepted(serve: Serve) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    response = await client.get(
        "/", params={"query": "SELECT 1", "user": USER, "password": PASSWORD}
    )
    assert response.status == 200
    assert only(backend).user == USER


@pytest.mark.asyncio
async def test_anonymous_requests_pass_only_when_allowed(serve: Serve) -> None:
    backend = MemoryBackend()
    client = await serve(backend, allow_anonymous=True)
    response = await client.post("/", data=b"SELECT 1")
    assert response.status == 200
    assert only(backend).user == "default"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"readonly": "0"}, 500, "164"),
        ({"readonly": "2"}, 500, "164"),
        ({"max_execution_time": "3600"}, 500, "452"),
        ({"max_result_rows": "0"}, 500, "452"),
        ({"allow_introspection_functions": "1"}, 500, "164"),
        ({"compress": "1"}, 501, "48"),
        ({"default_format": "No Such"}, 404, "73"),
        ({"query_id": "q" * 300}, 400, "36"),
    ],
)
async def test_settings_and_parameters_that_would_lift_a_bound_are_refused(
    serve: Serve, params: dict[str, str], status: int, code: str
) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    response = await client.post("/", params=params, data=b"SELECT 1", headers=AUTH)
    assert (response.status, response.headers["X-ClickHouse-Exception-Code"]) == (status, code)
    assert backend.statements == []


@pytest.mark.asyncio
async def test_an_empty_query_is_a_syntax_error(serve: Serve) -> None:
    client = await serve(MemoryBackend())
    response = await client.post("/", data=b"  \n", headers=AUTH)
    assert (response.status, response.headers["X-ClickHouse-Exception-Code"]) == (400, "62")


@pytest.mark.asyncio
async def test_a_query_larger_than_max_query_size_is_refused(serve: Serve) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    sql = "SELECT '" + "x" * LIMITS.max_query_size + "'"
    response = await client.post("/", data=sql.encode(), headers=AUTH)
    assert (response.status, response.headers["X-ClickHouse-Exception-Code"]) == (413, "229")
    huge = await client.post("/", data=b"x" * (LIMITS.max_query_size + 70_000), headers=AUTH)
    assert (huge.status, huge.headers["X-ClickHouse-Exception-Code"]) == (413, "229")
    assert backend.statements == []


@pytest.mark.asyncio
@pytest.mark.parametrize("params", [{}, {"query": "INSERT INTO requests FORMAT Native"}])
async def test_a_compressed_body_is_insert_data_and_refused_as_a_write(
    serve: Serve, params: dict[str, str]
) -> None:
    backend = MemoryBackend()
    client = await serve(backend)
    response = await client.post(
        "/",
        params=params,
        data=gzip.compress(b"INSERT INTO requests FORMAT Native\n\x00\x01"),
        headers={**AUTH, "Content-Encoding": "gzip"},
    )
    assert (response.status, response.headers["X-ClickHouse-Exception-Code"]) == (500, "164")
    assert f"{USER}: Cannot execute query in readonly mode" in await response.text()
    assert backend.statements == []


@pytest.mark.asyncio
async def test_engine_errors_keep_their_code_and_name_the_analyst(serve: Serve) -> None:
    def refuse(statement: Statement) -> Result:
        raise ClickHouseError.parse(
            "Code: 164. DB::Exception: default: Cannot execute query in readonly mode. (READONLY)"
        )

    client = await serve(MemoryBackend(refuse))
    response = await client.post("/", data=b"DROP TABLE requests", headers=AUTH)
    assert (response.status, response.headers["X-ClickHouse-Exception-Code"]) == (500, "164")
    assert (await response.text()).startswith(
        f"Code: 164. DB::Exception: {USER}: Cannot execute query in readonly mode. (READONLY)"
    )


@pytest.mark.asyncio
async def test_an_unexpected_failure_is_still_a_clickhouse_error(serve: Serve) -> None:
    def crash(statement: Statement) -> Result:
        raise KeyError("boom")

    client = await serve(MemoryBackend(crash))
    response = await client.post("/", data=b"SELECT 1", headers=AUTH)
    assert (response.status, response.headers["X-ClickHouse-Exception-Code"]) == (500, "1001")


@pytest.mark.asyncio
async def test_queries_beyond_the_concurrency_bound_wait_then_are_refused(serve: Serve) -> None:
    gate = Gate()
    client = await serve(MemoryBackend(gate), max_concurrent=1, queue_timeout_s=0.2)
    first = asyncio.create_task(client.post("/", data=b"SELECT 1", headers=AUTH))
    await asyncio.to_thread(gate.entered.wait, 10)
    second = await client.post("/", data=b"SELECT 2", headers=AUTH)
    assert (second.status, second.headers["X-ClickHouse-Exception-Code"]) == (500, "202")
    assert "Maximum: 1" in await second.text()
    gate.open()
    assert (await first).status == 200
    third = await client.post("/", data=b"SELECT 3", headers=AUTH)
    assert third.status == 200


@pytest.mark.asyncio
async def test_a_query_whose_client_goes_away_is_cancelled(serve: Serve) -> None:
    gate = Gate()
    backend = MemoryBackend(gate)
    client = await serve(backend, max_concurrent=1)
    request = asyncio.create_task(client.post("/", data=b"SELECT sleep(3)", headers=AUTH))
    await asyncio.to_thread(gate.entered.wait, 10)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await client.session.close()  # drop the connection, as a client that gave up does
    for _ in range(100):
        if backend.cancelled:
            break
        await asyncio.sleep(0.05)
    assert backend.cancelled == [only(backend).tag]
    gate.open()


@pytest.mark.parametrize(
    ("output_format", "expected"),
    [
        ("Native", "application/octet-stream"),
        ("RowBinaryWithNamesAndTypes", "application/octet-stream"),
        ("Parquet", "application/octet-stream"),
        ("TSVWithNames", "text/tab-separated-values; charset=UTF-8"),
        ("CSVWithNames", "text/csv; charset=UTF-8; header=present"),
        ("CSV", "text/csv; charset=UTF-8; header=absent"),
        ("JSON", "application/json; charset=UTF-8"),
        ("JSONCompactEachRow", "application/x-ndjson; charset=UTF-8"),
        ("Pretty", "text/plain; charset=UTF-8"),
    ],
)
def test_content_types_follow_the_format(output_format: str, expected: str) -> None:
    assert content_type(output_format) == expected
