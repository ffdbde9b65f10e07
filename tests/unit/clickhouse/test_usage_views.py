"""The per-minute usage views, fed by the sink's inserts into requests, on embedded chDB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from worker.flow.output import REQUEST_COLUMNS, PartitionRows, RequestRow
from worker.settings import ClickHouseSettings
from worker.sinks.clickhouse import ClickHouseSink

MINUTE = datetime.now(UTC).replace(second=0, microsecond=0)


def row(
    offset: int,
    tenant: str,
    operation: str,
    *,
    code: str = "",
    cache: str = "bypass",
    latency_ms: float = 1.0,
    second: int = 0,
) -> RequestRow:
    at = MINUTE + timedelta(seconds=second)
    return (
        f"{tenant}-{offset}",
        tenant,
        operation,
        "error" if code else "ok",
        code,
        "",
        at,
        at,
        at,
        latency_ms,
        cache,
        "requests",
        0,
        offset,
        "",
        "",
        "",
        "",
    )


def slice_of(rows: list[RequestRow]) -> PartitionRows:
    part = PartitionRows("requests", 0)
    for item in rows:
        part.add(item, item[REQUEST_COLUMNS.index("source_offset")])
    return part


WORKLOAD = [
    # acme quotes: 10 requests, latencies 1..10 ms, 2 not_found, cache 6 hits and 2 misses
    *(
        row(
            i,
            "acme",
            "price.quote",
            code="not_found" if i in (3, 7) else "",
            cache="hit" if i < 6 else ("miss" if i < 8 else "bypass"),
            latency_ms=float(i + 1),
        )
        for i in range(10)
    ),
    # globex text stats: 4 requests, one rate limited, in the next minute
    *(
        row(
            10 + i,
            "globex",
            "text.stats",
            code="rate_limited" if i == 0 else "",
            latency_ms=100.0,
            second=60,
        )
        for i in range(4)
    ),
]


@pytest_asyncio.fixture
async def sink(
    chdb_settings: Callable[[], ClickHouseSettings],
) -> AsyncIterator[ClickHouseSink]:
    started = ClickHouseSink(chdb_settings())
    await started.start()
    yield started
    await started.close()


async def query(sink: ClickHouseSink, sql: str) -> list[tuple[Any, ...]]:
    # Test-only: the sink's own client, on its own thread (chDB wants one owner).
    return await sink._call(lambda: sink._client.query(sql).result_rows)


def usage_sql(database: str) -> str:
    return (
        "SELECT minute, tenant, operation, sum(requests), sum(errors), "  # noqa: S608
        "round(sum(cache_hits) / nullIf(sum(cache_hits) + sum(cache_misses), 0), 3), "
        "arrayMap(q -> round(q, 1), quantilesMerge(0.5, 0.9, 0.99)(latency_ms)) "
        f"FROM {database}.usage_per_minute "
        "GROUP BY minute, tenant, operation ORDER BY minute, tenant"
    )


@pytest.mark.asyncio
async def test_usage_per_minute_counts_errors_cache_ratio_and_latency_quantiles(
    sink: ClickHouseSink,
) -> None:
    database = sink._database
    await sink.write([slice_of(WORKLOAD)])
    rows = await query(sink, usage_sql(database))
    acme, globex = rows
    assert acme[:6] == (MINUTE.replace(tzinfo=None), "acme", "price.quote", 10, 2, 0.75)
    p50, p90, p99 = acme[6]
    assert 5.0 <= p50 <= 6.0
    assert 9.0 <= p90 <= 10.0
    assert p99 <= 10.0
    assert globex[:6] == (
        (MINUTE + timedelta(minutes=1)).replace(tzinfo=None),
        "globex",
        "text.stats",
        4,
        1,
        None,
    ), "no cache lookups: no ratio"
    assert globex[6] == [100.0, 100.0, 100.0]


@pytest.mark.asyncio
async def test_errors_per_minute_counts_each_code(sink: ClickHouseSink) -> None:
    await sink.write([slice_of(WORKLOAD)])
    rows = await query(
        sink,
        "SELECT tenant, error_code, sum(errors) "  # noqa: S608
        f"FROM {sink._database}.errors_per_minute GROUP BY tenant, error_code ORDER BY tenant",
    )
    assert rows == [("acme", "not_found", 2), ("globex", "rate_limited", 1)]


@pytest.mark.asyncio
async def test_a_resent_chunk_deduplicated_by_its_token_is_not_counted_twice(
    sink: ClickHouseSink,
) -> None:
    await sink.write([slice_of(WORKLOAD)])
    # Positions lost (as after an ambiguous failure): only the token stops the rows.
    sink._high_water["requests"] = {}
    await sink.write([slice_of(WORKLOAD)])
    database = sink._database
    assert await query(sink, f"SELECT count() FROM {database}.requests") == [(14,)]  # noqa: S608
    assert await query(
        sink,
        f"SELECT sum(requests), sum(errors) FROM {database}.usage_per_minute",  # noqa: S608
    ) == [(14, 3)]
    assert await query(
        sink,
        f"SELECT sum(errors) FROM {database}.errors_per_minute",  # noqa: S608
    ) == [(3,)]
