"""The analyst command answers the documented queries, and cannot write.

A worker processes a known workload on the real broker and chDB; then every
query of the "example queries" section of docs/analytics.md runs through
``worker db query`` (a subprocess, as an analyst would run it), and its answer is
checked against the workload and against the raw ``requests`` table.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.kafka import produce, read_topics
from tests.support.worker import REPO, WorkerStack
from worker.loadgen import TENANTS, SampleRequest, workload

pytestmark = pytest.mark.e2e

DOC = REPO / "docs" / "analytics.md"


def documented_queries(path: Path = DOC) -> dict[str, str]:
    """Title -> SQL of every query between the analyst-queries markers."""
    text = path.read_text(encoding="utf-8")
    section = text.split("<!-- analyst-queries:start -->")[1].split("<!-- analyst-queries:end -->")[
        0
    ]
    return dict(re.findall(r"^### (.+?)\n\n```sql\n(.*?)```", section, re.MULTILINE | re.DOTALL))


def by(rows: list[dict[str, Any]], *keys: str, value: str) -> dict[Any, Any]:
    return {
        tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]]: row[value] for row in rows
    }


def assert_params_and_results(
    found: dict[str, Any],
    some: SampleRequest,
    answers: dict[str, list[dict[str, Any]]],
    samples: list[SampleRequest],
) -> None:
    """The rows hold what was asked and answered: one request's, and the quotes' totals."""
    asked = orjson.loads(some.value)["params"]
    assert orjson.loads(found["params"]).items() >= asked.items(), "what was asked"
    assert orjson.loads(found["result"]), "and what was answered"
    quoted: Counter[tuple[str, str]] = Counter()
    for sample in samples:
        body = orjson.loads(sample.value) if sample.status == "ok" else {}
        if body.get("operation") == "price.quote":
            params = body["params"]
            quoted[(params["sku"], params.get("currency", "EUR"))] += params["quantity"]
    per_sku = answers["Quotes per SKU and currency, last 24 hours"]
    assert {(row["sku"], row["currency"]): int(row["quantity"]) for row in per_sku} == quoted
    assert all(float(row["total"]) > 0 for row in per_sku)


@pytest.fixture(scope="module")
def queries() -> dict[str, str]:
    found = documented_queries()
    assert len(found) >= 10, list(found)
    return found


def run_workload(stack: WorkerStack) -> list[SampleRequest]:
    samples = stack.sign(workload(600, 90, run_id=stack.run_id), *TENANTS)
    produce(stack.bootstrap, stack.topics.requests, samples)
    stack.start()
    read_topics(
        stack.bootstrap,
        [stack.topics.responses],
        until=lambda seen: len(seen) >= len(samples),
        timeout_s=180,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()
    return samples


def test_the_documented_queries_answer_with_what_the_worker_stored(
    worker_stack: Callable[..., WorkerStack], queries: dict[str, str]
) -> None:
    stack = worker_stack()
    samples = run_workload(stack)
    some = next(s for s in samples if s.code is None and b'"price.quote"' in s.value)
    params = {"tenant": "acme", "request_id": some.request_id or "", "reason": "validation_failed"}

    answers = {}
    for title, sql in queries.items():
        wanted = {name: params[name] for name in re.findall(r"\{(\w+):\w+\}", sql)}
        answers[title] = stack.query(sql, **wanted)

    [truth] = stack.query(
        "SELECT "
        "(SELECT groupArray((tenant, n)) FROM (SELECT tenant, count() AS n FROM requests "
        "GROUP BY tenant)) AS per_tenant, "
        "(SELECT groupArray((operation, n)) FROM (SELECT operation, count() AS n FROM requests "
        "GROUP BY operation)) AS per_operation, "
        "(SELECT groupArray((error_code, tenant, n)) FROM (SELECT error_code, tenant, count() AS n "
        "FROM requests WHERE status = 'error' GROUP BY error_code, tenant)) AS errors, "
        "(SELECT groupArray((reason, n)) FROM (SELECT reason, count() AS n FROM dead_letters "
        "GROUP BY reason)) AS dead, "
        "(SELECT max(latency_ms) FROM requests) AS slowest, "
        "(SELECT groupArray((tenant, operation, h, m)) FROM (SELECT tenant, operation, "
        "countIf(cache_status = 'hit') AS h, countIf(cache_status = 'miss') AS m "
        "FROM requests GROUP BY tenant, operation)) AS cached"
    )
    per_tenant = dict(truth["per_tenant"])
    total = len(samples)
    assert sum(per_tenant.values()) == total

    usage = answers["Requests and errors per tenant, last 24 hours"]
    assert by(usage, "tenant", value="requests") == per_tenant, "the view agrees with the rows"
    errors_expected = Counter(s.status == "error" for s in samples)[True]
    assert sum(row["errors"] for row in usage) == errors_expected

    traffic = answers["Traffic per minute for one tenant, last hour"]
    assert sum(row["requests"] for row in traffic) == per_tenant["acme"]

    latency = answers["Latency quantiles per operation, last 24 hours"]
    assert by(latency, "operation", value="requests") == dict(truth["per_operation"])
    for row in latency:
        assert 0 <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"], row

    codes = answers["Errors by code, last 24 hours"]
    assert by(codes, "error_code", "tenant", value="errors") == {
        (code, tenant): n for code, tenant, n in truth["errors"]
    }
    assert Counter({row["error_code"]: 0 for row in codes}) + Counter(
        {
            code: sum(r["errors"] for r in codes if r["error_code"] == code)
            for code in {r["error_code"] for r in codes}
        }
    ) == Counter(s.code for s in samples if s.code)

    cache = answers["Cache hit ratio per tenant and operation, last 24 hours"]
    assert cache, "one row per tenant and operation"
    # The view counts what the rows say about the result cache in front of the operations.
    assert {(r["tenant"], r["operation"]): (int(r["hits"]), int(r["misses"])) for r in cache} == {
        (tenant, operation): (int(h), int(m)) for tenant, operation, h, m in truth["cached"]
    }
    assert sum(int(row["misses"]) for row in cache) > 0, "valid requests went through the cache"
    for row in cache:
        hits, misses = int(row["hits"]), int(row["misses"])
        if hits + misses:
            assert row["hit_ratio"] == pytest.approx(round(hits / (hits + misses), 3)), row
        else:
            assert row["hit_ratio"] is None, row

    [found] = answers["One request, by id"]
    assert found["request_id"] == some.request_id
    assert found["status"] == "ok"
    assert_params_and_results(found, some, answers, samples)

    slowest = answers["The slowest requests of the last hour"]
    assert len(slowest) == 10
    latencies = [row["latency_ms"] for row in slowest]
    assert latencies == sorted(latencies, reverse=True)
    assert latencies[0] == pytest.approx(truth["slowest"])

    dead = answers["Dead letters by reason, last 7 days"]
    expected_dead = Counter(s.code for s in samples if s.dead_letter)
    assert by(dead, "reason", value="messages") == dict(expected_dead) == dict(truth["dead"])

    latest = answers["The latest dead letters of one reason"]
    assert len(latest) == min(20, expected_dead["validation_failed"])
    assert all(row["payload_start"] and row["payload_bytes"] > 0 for row in latest)

    [twice] = answers["Are any requests stored twice?"]
    assert twice == {"rows": total, "requests": total, "duplicates": 0}


def test_the_analyst_command_prints_csv_and_tables_and_cannot_write(
    worker_stack: Callable[..., WorkerStack], queries: dict[str, str]
) -> None:
    stack = worker_stack()
    samples = run_workload(stack)
    sql = queries["Requests and errors per tenant, last 24 hours"]

    as_csv = stack.cli("db", "query", sql, "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    header, *rows = as_csv.stdout.decode().splitlines()
    assert header == "tenant,requests,errors,error_rate"
    assert sum(int(row.split(",")[1]) for row in rows) == len(samples)

    as_table = stack.cli("db", "query", "SELECT count() AS stored FROM requests")
    assert as_table.returncode == 0, as_table.stderr
    assert "stored" in as_table.stdout.decode()
    assert str(len(samples)) in as_table.stdout.decode()

    refused = [
        "INSERT INTO requests (request_id, tenant) VALUES ('forged', 'acme')",
        "ALTER TABLE requests DELETE WHERE 1",
        "DROP TABLE dead_letters",
        "CREATE TABLE stolen (x UInt8) ENGINE = Memory",
        "SELECT count() FROM requests SETTINGS readonly = 0",
        "SET readonly = 0",
    ]
    for statement in refused:
        done = stack.cli("db", "query", statement)
        assert done.returncode == 1, (statement, done.stdout, done.stderr)
        assert b"READONLY" in done.stderr or b"readonly" in done.stderr, (statement, done.stderr)

    assert stack.query("SELECT count() AS n FROM requests") == [{"n": len(samples)}]
    assert stack.query("EXISTS TABLE dead_letters") == [{"result": 1}]
