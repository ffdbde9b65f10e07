"""Warming: a worker with an empty cache computes the hottest keys before it reports ready."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.support.requests import again, ask, cache_statuses, quote
from tests.support.worker import WorkerStack

pytestmark = pytest.mark.e2e


def test_a_fresh_worker_warms_the_hottest_keys_before_it_reports_ready(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    first = worker_stack()
    first.start()
    hot = [quote("SKU-1", q) for q in range(1, 7)]
    cold = quote("SKU-4", 9, "CHF")
    ask(first, [*hot, *(again(s) for s in hot), *(again(s) for s in hot), cold])
    assert first.stop() == 0, first.logs()

    # Another worker on the same ClickHouse data but with topics, changelogs and state of its
    # own: its cache starts empty, and only warming can fill it before requests arrive.
    second = worker_stack(CLICKHOUSE_PATH=str(first.root / "chdb"), CACHE_WARM_MAX_KEYS="6")
    second.start()
    log = second.wait_for_log(r"Worker ready")
    # The first warming of the run (a rebalance right after start would warm again).
    warmed = re.findall(r"cache warmed for partitions \[0, 1, 2, 3\].*", log)[0]
    assert "done in" in warmed
    assert "6 hot keys owned here, 0 already cached, 6 computed" in warmed
    assert log.index("cache warmed") < log.index("Worker ready")

    answers = ask(second, [*(again(s) for s in hot), again(cold)])
    assert cache_statuses(answers) == ["hit"] * 6 + ["miss"], "only the hottest six were warmed"
    assert {a["data"]["sku"] for a in answers[:6]} == {"SKU-1"}
    assert second.stop() == 0, second.logs()
