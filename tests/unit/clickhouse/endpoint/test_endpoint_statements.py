"""Statements judged on ClickHouse's canonical rendering (``formatQuerySingleLine``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.clickhouse.endpoint.chdb_backend import quote_string
from worker.clickhouse.endpoint.errors import ClickHouseError
from worker.clickhouse.endpoint.statements import inspect


@pytest.mark.parametrize(
    ("canonical", "kind", "output_format"),
    [
        ("SELECT 1", "SELECT", None),
        ("SELECT count() FROM requests FORMAT JSONEachRow", "SELECT", "JSONEachRow"),
        ("SELECT 1 SETTINGS max_threads = 1 FORMAT TSV", "SELECT", "TSV"),
        ("SELECT 1 FORMAT CSV SETTINGS max_threads = 1", "SELECT", "CSV"),
        ("WITH 1 AS x SELECT x", "WITH", None),
        ("SELECT format('{} {}', a, b) FROM t", "SELECT", None),
        ("SELECT * FROM format(CSV, 'a\\n1')", "SELECT", None),
        ("SELECT 1 UNION ALL SELECT 2 FORMAT Native", "SELECT", "Native"),
        ("SHOW TABLES FROM worker", "SHOW", None),
        ("DESCRIBE TABLE requests", "DESCRIBE", None),
        ("DESCRIBE TABLE (SELECT 1)", "DESCRIBE", None),
        ("EXISTS TABLE worker.requests", "EXISTS", None),
        ("EXPLAIN SELECT 1", "EXPLAIN", None),
        ("SET readonly = 0", "SET", None),  # ClickHouse refuses it under readonly=1
        ("USE worker", "USE", None),
        ("SELECT `file` FROM t", "SELECT", None),  # a column named file
        ("SELECT 'file(' AS x", "SELECT", None),
    ],
)
def test_reads_are_accepted(canonical: str, kind: str, output_format: str | None) -> None:
    shape = inspect(canonical, "analyst")
    assert (shape.kind, shape.output_format) == (kind, output_format)


@pytest.mark.parametrize(
    "canonical",
    [
        "INSERT INTO requests FORMAT Values",
        "DROP TABLE requests",
        "TRUNCATE TABLE requests",
        "ALTER TABLE requests DELETE WHERE 1",
        "KILL QUERY WHERE 1 ASYNC",
        "SYSTEM FLUSH LOGS",
        "OPTIMIZE TABLE requests",
        "CREATE TABLE t (a Int8) ENGINE = Memory",
        "CHECK TABLE requests",
        "",
    ],
)
def test_everything_else_is_a_readonly_error(canonical: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        inspect(canonical, "analyst")
    assert caught.value.name == "READONLY"
    assert caught.value.text == "analyst: Cannot execute query in readonly mode."


@pytest.mark.parametrize(
    "canonical",
    [
        "SELECT 1 INTO OUTFILE '/tmp/x' FORMAT CSV",
        "SELECT * FROM requests INTO OUTFILE 'a' AND STDOUT",
        "EXPLAIN SELECT 1 INTO OUTFILE 'y'",
    ],
)
def test_into_outfile_is_refused(canonical: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        inspect(canonical, "analyst")
    assert caught.value.name == "INTO_OUTFILE_NOT_ALLOWED"


@pytest.mark.parametrize(
    "canonical",
    [
        "SELECT file('/etc/passwd')",
        "SELECT `file`('/etc/passwd')",
        "SELECT length(file('/etc/passwd', 'RawBLOB'))",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "DESCRIBE TABLE url('http://169.254.169.254/', 'CSV')",
        "DESCRIBE TABLE file('/etc/passwd', 'CSV')",
        "DESCRIBE `s3`('http://x/y.csv')",
    ],
)
def test_reading_the_hosts_files_or_urls_is_access_denied(canonical: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        inspect(canonical, "analyst")
    assert (caught.value.name, caught.value.http_status) == ("ACCESS_DENIED", 403)


@given(st.text(max_size=200))
def test_nothing_inside_a_string_literal_is_refused(text: str) -> None:
    shape = inspect(f"SELECT {quote_string(text)} AS s", "analyst")
    assert (shape.kind, shape.output_format) == ("SELECT", None)
