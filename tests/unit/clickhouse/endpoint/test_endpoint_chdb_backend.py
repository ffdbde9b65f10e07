"""Analyst statements on the real embedded chDB: what runs, what is refused, what is bounded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker.clickhouse.endpoint.backend import TAG_PREFIX, Result, Statement
from worker.clickhouse.endpoint.chdb_backend import ChdbBackend
from worker.clickhouse.endpoint.errors import ClickHouseError
from worker.clickhouse.endpoint.limits import QueryLimits
from worker.settings import ClickHouseSettings

LIMITS = QueryLimits(
    max_execution_time=20.0,
    max_memory_usage=1 << 30,
    max_result_rows=1000,
    max_result_bytes=1 << 24,
    max_threads=1,
)
HEAVY = "SELECT count(), sum(number % 7) FROM numbers(100000000000)"


@pytest.fixture
def database(
    open_chdb: Callable[[ClickHouseSettings], Any], chdb_settings: Callable[[], ClickHouseSettings]
) -> str:
    """A database of the session's chDB with a table ``t`` of ten rows (the sink's client)."""
    settings = chdb_settings()
    client = open_chdb(settings)
    client.command(f"CREATE DATABASE {settings.database}")
    client.command(f"CREATE TABLE {settings.database}.t (a UInt64) ENGINE = MergeTree ORDER BY a")
    client.command(f"INSERT INTO {settings.database}.t SELECT number FROM numbers(10)")  # noqa: S608
    return settings.database


@pytest.fixture
def backend(chdb_dir: Path) -> Iterator[ChdbBackend]:
    backend = ChdbBackend(chdb_dir)
    backend.start()
    yield backend
    backend.close()


@pytest.fixture
def run(backend: ChdbBackend, database: str) -> Callable[..., Result]:
    def run(
        sql: str,
        *,
        default_format: str = "TabSeparated",
        settings: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        tag: str = f"{TAG_PREFIX}test",
    ) -> Result:
        statement = Statement(
            sql=sql,
            user="analyst",
            query_id="q-1",
            tag=tag,
            database=database,
            default_format=default_format,
            params=params or {},
            settings=LIMITS.session_settings(settings or {}, tag=tag),
        )
        return backend.execute(statement)

    return run


def refusal(run: Callable[..., Result], sql: str) -> ClickHouseError:
    with pytest.raises(ClickHouseError) as caught:
        run(sql)
    return caught.value


def test_the_engine_reports_its_version_and_timezone(backend: ChdbBackend) -> None:
    assert backend.version[0].isdigit()
    assert backend.timezone


def test_a_select_runs_in_the_requested_database_and_format(run: Callable[..., Result]) -> None:
    result = run("SELECT count() AS n FROM t")
    assert (result.body, result.output_format) == (b"10\n", "TabSeparated")
    result = run("SELECT a FROM t ORDER BY a LIMIT 2 FORMAT JSONEachRow")
    assert result.output_format == "JSONEachRow"
    assert [orjson.loads(line) for line in result.body.splitlines()] == [{"a": 0}, {"a": 1}]
    assert run("SELECT 1 AS x", default_format="CSVWithNames").body == b'"x"\n1\n'
    assert result.read_rows > 0


def test_query_parameters_are_bound_in_clickhouses_escaped_form(
    run: Callable[..., Result],
) -> None:
    result = run(
        "SELECT {s:String} AS s, {n:UInt8} AS n FORMAT JSONEachRow",
        params={"s": "tab\\there 'quoted'", "n": "7"},
    )
    assert orjson.loads(result.body) == {"s": "tab\there 'quoted'", "n": 7}


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (1)",
        "DROP TABLE t",
        "TRUNCATE TABLE t",
        "ALTER TABLE t DELETE WHERE 1",
        "CREATE TABLE t2 (a UInt8) ENGINE = Memory",
        "KILL QUERY WHERE 1",
        "SYSTEM DROP MARK CACHE",
    ],
)
def test_writes_ddl_and_kill_are_readonly_errors(run: Callable[..., Result], sql: str) -> None:
    error = refusal(run, sql)
    assert (error.number, error.name) == (164, "READONLY")
    assert error.text == "analyst: Cannot execute query in readonly mode."
    assert run("SELECT count() FROM t").body == b"10\n"


@pytest.mark.parametrize(
    "sql",
    ["SET readonly = 0", "SELECT 1 SETTINGS readonly = 0", "SET max_execution_time = 1000"],
)
def test_a_query_cannot_change_its_settings(run: Callable[..., Result], sql: str) -> None:
    error = refusal(run, sql)
    assert error.name == "READONLY"
    assert "setting in readonly mode" in error.text


def test_more_than_one_statement_is_a_syntax_error(run: Callable[..., Result]) -> None:
    error = refusal(run, "SELECT 1; KILL QUERY WHERE 1")
    assert error.name == "SYNTAX_ERROR"
    assert "Multi-statements are not allowed" in error.text
    assert "formatQuerySingleLine" not in error.text


def test_a_syntax_error_reads_as_the_querys_own(run: Callable[..., Result]) -> None:
    error = refusal(run, "SELEC 1")
    assert (error.name, error.http_status) == ("SYNTAX_ERROR", 400)
    assert "formatQuerySingleLine" not in error.text


def test_reading_host_files_is_refused(run: Callable[..., Result], tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    assert refusal(run, f"SELECT file('{secret}')").name == "ACCESS_DENIED"
    assert refusal(run, f"SELECT `file`('{secret}')").name == "ACCESS_DENIED"
    assert refusal(run, f"DESCRIBE TABLE file('{secret}', 'CSV')").name == "ACCESS_DENIED"
    table_function = f"SELECT * FROM file('{secret}', 'LineAsString')"  # noqa: S608
    assert refusal(run, table_function).name == "ACCESS_DENIED"


def test_into_outfile_writes_nothing(run: Callable[..., Result], tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    error = refusal(run, f"SELECT * FROM t INTO OUTFILE '{target}' FORMAT CSV")  # noqa: S608
    assert error.name == "INTO_OUTFILE_NOT_ALLOWED"
    assert not target.exists()


def test_urls_are_not_reached(run: Callable[..., Result]) -> None:
    assert refusal(run, "SELECT * FROM url('http://127.0.0.1:9/', 'CSV')").name == "READONLY"
    describe = "DESCRIBE TABLE url('http://127.0.0.1:9/', 'CSV')"
    assert refusal(run, describe).name == "ACCESS_DENIED"


def test_the_caps_bound_the_result(run: Callable[..., Result]) -> None:
    error = refusal(run, "SELECT number FROM numbers(5000)")
    assert error.name == "TOO_MANY_ROWS_OR_BYTES"
    lowered = run("SELECT number FROM numbers(5000)", settings={"result_overflow_mode": "break"})
    assert 0 < len(lowered.body.splitlines()) <= 5000


def test_max_execution_time_stops_a_heavy_query(run: Callable[..., Result]) -> None:
    with pytest.raises(ClickHouseError) as caught:
        run(HEAVY, settings={"max_execution_time": "0.5"})
    assert (caught.value.name, caught.value.http_status) == ("TIMEOUT_EXCEEDED", 408)


def test_every_query_gets_a_fresh_session(run: Callable[..., Result]) -> None:
    run("USE system")
    low = run("SELECT getSetting('max_result_rows')", settings={"max_result_rows": "5"})
    assert low.body == b"5\n"
    after = run("SELECT getSetting('max_result_rows'), currentDatabase(), getSetting('readonly')")
    assert after.body.split(b"\t")[0] == b"1000"
    assert after.body.split(b"\t")[2] == b"1\n"
    assert after.body.split(b"\t")[1] != b"system"


def test_cancel_stops_the_tagged_query(run: Callable[..., Result], backend: ChdbBackend) -> None:
    outcome: list[BaseException] = []

    def heavy() -> None:
        try:
            run(HEAVY, tag=f"{TAG_PREFIX}heavy")
        except ClickHouseError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=heavy)
    thread.start()
    while thread.is_alive() and not outcome:
        backend.cancel(f"{TAG_PREFIX}heavy")
        thread.join(timeout=0.2)
    thread.join(timeout=10)
    assert not thread.is_alive()
    [error] = outcome
    assert isinstance(error, ClickHouseError)
    assert error.name == "QUERY_WAS_CANCELLED"


def test_a_heavy_query_does_not_hold_up_the_sinks_inserts(
    run: Callable[..., Result],
    backend: ChdbBackend,
    database: str,
    open_chdb: Callable[[ClickHouseSettings], Any],
    chdb_dir: Path,
) -> None:
    """The sink's connection inserts while an analyst query runs on another thread."""
    sink = open_chdb(ClickHouseSettings(url=None, path=chdb_dir, database=database))
    done = threading.Event()

    def heavy() -> None:
        try:
            run(HEAVY, tag=f"{TAG_PREFIX}contention")
        except ClickHouseError:
            pass
        finally:
            done.set()

    thread = threading.Thread(target=heavy)
    thread.start()
    inserted = 0
    try:
        while not done.is_set() and inserted < 20:
            sink.insert(f"{database}.t", [[100 + inserted]], column_names=["a"])
            inserted += 1
        running_meanwhile = not done.is_set()
    finally:
        backend.cancel(f"{TAG_PREFIX}contention")
        thread.join(timeout=30)
    assert running_meanwhile, "the heavy query should still have been running"
    assert run("SELECT count() FROM t").body == b"30\n"


def test_a_cancellation_before_the_sql_runs_still_stops_it(
    run: Callable[..., Result], backend: ChdbBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client may hang up while the session is being prepared, before KILL can see it."""
    tag = f"{TAG_PREFIX}early"
    render = ChdbBackend._render

    def render_then_hang_up(connection: Any, sql: str) -> str:
        backend.cancel(tag)  # nothing to KILL yet: the query has not started
        return render(connection, sql)

    with monkeypatch.context() as patch:
        patch.setattr(backend, "_render", render_then_hang_up)
        with pytest.raises(ClickHouseError) as caught:
            run(HEAVY, tag=tag)
    assert caught.value.name == "QUERY_WAS_CANCELLED"
    assert run("SELECT 1", tag=tag).body == b"1\n", "the tag is forgotten afterwards"


def test_after_stopping_no_query_runs(run: Callable[..., Result], backend: ChdbBackend) -> None:
    backend.cancel(None)
    with pytest.raises(ClickHouseError) as caught:
        run("SELECT 1")
    assert caught.value.name == "QUERY_WAS_CANCELLED"
