"""Analysts query a live worker's chDB through its ClickHouse HTTP endpoint."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.support.kafka import Received, produce, read_topics
from tests.support.worker import REPO, WorkerStack
from worker.clickhouse.endpoint.discovery import EndpointInfo
from worker.loadgen import TENANTS, workload

pytestmark = pytest.mark.e2e

USER = "ann"
PASSWORD = "e2e-analyst-secret"  # noqa: S105 - a test credential
ENDPOINT_ENV = {"CLICKHOUSE_HTTP_USER": USER, "CLICKHOUSE_HTTP_PASSWORD": PASSWORD}
HEAVY = "SELECT count(), sum(number % 7) FROM numbers(1000000000000)"


def documented_queries() -> list[str]:
    """The ``sql`` examples of the endpoint's section of docs/analytics.md."""
    text = (REPO / "docs" / "analytics.md").read_text(encoding="utf-8")
    start = text.index("## Querying the live worker")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    queries = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    assert len(queries) >= 3, "the section documents its example queries"
    return queries


def analyst_client(info: EndpointInfo, password: str = PASSWORD) -> Any:
    """clickhouse-connect over HTTP, exactly as an analyst would open it."""
    return clickhouse_connect.get_client(
        host=info.connect_host, port=info.port, username=USER, password=password
    )


def responses_of(stack: WorkerStack, count: int) -> list[Received]:
    return read_topics(
        stack.bootstrap,
        [stack.topics.responses],
        until=lambda seen: len(seen) >= count,
        timeout_s=180,
        alive=stack.alive,
    )


def curl(
    info: EndpointInfo, tmp_path: Path, *args: str, path: str = "/"
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one curl request to the endpoint."""
    executable = shutil.which("curl")
    assert executable, "curl is a prerequisite of the tests (services/run.sh installs it)"
    headers_file, body_file = tmp_path / "headers.txt", tmp_path / "body.bin"
    done = subprocess.run(
        [
            executable,
            "-sS",
            "-D",
            str(headers_file),
            "-o",
            str(body_file),
            "-w",
            "%{http_code}",
            *args,
            f"{info.url}{path}",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    headers = {}
    for line in headers_file.read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        if value:
            headers[name.strip().lower()] = value.strip()
    return int(done.stdout), headers, body_file.read_bytes()


def rows_reach(client: Any, n: int, timeout_s: float = 60) -> int:
    """``SELECT count() FROM requests`` once it reaches ``n`` (or at the timeout).

    Responses go out before their rows are inserted: the rows of the last
    requests answered follow within the insert interval and an insert.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        count = int(client.command("SELECT count() FROM requests"))
        if count >= n or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def test_analysts_see_rows_appear_while_the_worker_runs(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(**ENDPOINT_ENV)
    first = stack.sign(workload(300, 30, run_id=f"{stack.run_id}a"), *TENANTS)
    second = stack.sign(workload(200, 0, run_id=f"{stack.run_id}b", seed=7), *TENANTS)
    produce(stack.bootstrap, stack.topics.requests, first)
    stack.start()
    info = stack.endpoint()
    client = analyst_client(info)
    try:
        responses_of(stack, len(first))
        assert rows_reach(client, len(first)) == len(first)
        for sql in documented_queries():
            result = client.query(sql)
            assert result.column_names, sql
            assert result.result_rows, sql

        produce(stack.bootstrap, stack.topics.requests, second)
        responses_of(stack, len(first) + len(second))
        total = len(first) + len(second)
        assert rows_reach(client, total) == total, "the new rows appear"
        by_status = dict(
            client.query("SELECT status, count() FROM requests GROUP BY status").result_rows
        )
        assert by_status == {
            "ok": sum(s.status == "ok" for s in (*first, *second)),
            "error": sum(s.status == "error" for s in (*first, *second)),
        }
    finally:
        client.close()

    # The analyst CLI goes through the endpoint while the worker holds chDB ...
    assert stack.query("SELECT count() AS n FROM requests") == [{"n": total}]
    assert stack.stop() == 0, stack.logs()
    # ... and opens chDB itself once it stopped.
    assert stack.query("SELECT count() AS n FROM requests") == [{"n": total}]


def test_curl_works_and_writes_settings_changes_and_wrong_passwords_are_refused(
    worker_stack: Callable[..., WorkerStack], tmp_path: Path
) -> None:
    stack = worker_stack(**ENDPOINT_ENV)
    samples = stack.sign(workload(100, 10, run_id=stack.run_id), *TENANTS)
    produce(stack.bootstrap, stack.topics.requests, samples)
    stack.start()
    info = stack.endpoint()
    responses_of(stack, len(samples))
    client = analyst_client(info)
    try:
        assert rows_reach(client, len(samples)) == len(samples)
    finally:
        client.close()
    auth = f"{USER}:{PASSWORD}"

    status, headers, body = curl(
        info,
        tmp_path,
        "-u",
        auth,
        "--data-binary",
        "SELECT status, count() AS n FROM requests GROUP BY status ORDER BY status "
        "FORMAT JSONEachRow",
    )
    assert status == 200, body
    assert headers["x-clickhouse-format"] == "JSONEachRow"
    rows = [orjson.loads(line) for line in body.splitlines()]
    assert sum(row["n"] for row in rows) == len(samples)
    assert {row["status"] for row in rows} == {"ok", "error"}

    status, _, body = curl(
        info,
        tmp_path,
        "-u",
        auth,
        "-G",
        "--data-urlencode",
        "query=SELECT count() AS n FROM requests",
        "--data-urlencode",
        "default_format=JSONEachRow",
    )
    assert (status, orjson.loads(body)) == (200, {"n": len(samples)})

    client = analyst_client(info)
    try:
        for statement in (
            "INSERT INTO requests (request_id, tenant) VALUES ('forged', 'mallory')",
            "DROP TABLE requests",
            "SET readonly = 0",
        ):
            with pytest.raises(DatabaseError) as caught:
                client.command(statement)
            assert caught.value.code == 164, statement
            assert "(READONLY)" in str(caught.value)
    finally:
        client.close()

    status, headers, body = curl(
        info, tmp_path, "-u", auth, "--data-binary", "SELECT 1", path="/?readonly=0"
    )
    assert (status, headers["x-clickhouse-exception-code"]) == (500, "164"), body
    assert b"Cannot modify 'readonly' setting in readonly mode" in body

    with pytest.raises(DatabaseError) as caught:
        analyst_client(info, password="not-the-password")  # noqa: S106 - the point
    assert caught.value.code == 516
    status, headers, body = curl(
        info, tmp_path, "-u", f"{USER}:nope", "--data-binary", "SELECT count() FROM requests"
    )
    assert (status, headers["x-clickhouse-exception-code"]) == (403, "516")
    assert b"Authentication failed" in body

    # Nothing was written, dropped or unlocked.
    assert stack.query("SELECT count() AS n FROM requests") == [{"n": len(samples)}]


def test_a_heavy_analyst_query_does_not_stop_the_sink_from_keeping_up(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(**ENDPOINT_ENV, CLICKHOUSE_HTTP_MAX_EXECUTION_TIME="600")
    warmup = stack.sign(workload(50, 0, run_id=f"{stack.run_id}w"), *TENANTS)
    wave = stack.sign(workload(1000, 50, run_id=f"{stack.run_id}x", seed=3), *TENANTS)
    produce(stack.bootstrap, stack.topics.requests, warmup)
    stack.start()
    info = stack.endpoint()
    responses_of(stack, len(warmup))
    client = analyst_client(info)
    heavy = HeavyQuery(info)
    try:
        heavy.start()
        running = (
            "SELECT count() FROM system.processes WHERE startsWith(query, 'SELECT count(), sum')"
        )
        while client.command(running) == 0:
            assert heavy.thread.is_alive(), heavy.answer
            time.sleep(0.1)

        produce(stack.bootstrap, stack.topics.requests, wave)
        received = responses_of(stack, len(warmup) + len(wave))
        # The sink stored the whole wave while the analyst query was still running.
        assert rows_reach(client, len(warmup) + len(wave)) == len(warmup) + len(wave)
        assert heavy.thread.is_alive(), heavy.answer
        assert client.command(running) == 1
        assert len({r.key for r in received}) == len(warmup) + len(wave)

        # The analyst gives up: the query is cancelled, not left to run to its limit.
        heavy.disconnect()
        while client.command(running) != 0:
            assert stack.alive()
            time.sleep(0.1)
        assert client.command("SELECT count() FROM requests") == len(warmup) + len(wave)
    finally:
        heavy.disconnect()
        client.close()
    assert stack.stop() == 0, stack.logs()


class HeavyQuery:
    """An analyst's long aggregation over raw HTTP, and its hanging up."""

    def __init__(self, info: EndpointInfo) -> None:
        self._info = info
        self._socket = socket.create_connection((info.connect_host, info.port), timeout=600)
        self.answer = b""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        body = HEAVY.encode()
        request = (
            f"POST /?max_threads=1 HTTP/1.1\r\nHost: {self._info.connect_host}\r\n"
            f"X-ClickHouse-User: {USER}\r\nX-ClickHouse-Key: {PASSWORD}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self._socket.sendall(request + body)
        self.thread.start()

    def _run(self) -> None:
        try:
            while chunk := self._socket.recv(65536):
                self.answer += chunk
        except OSError:
            pass

    def disconnect(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self.thread.join(timeout=30)
