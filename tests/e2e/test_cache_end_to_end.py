"""The result cache in worker processes on the real broker, RocksDB and chDB.

TTL expiry, negative caching, tenant isolation, invalidation by key, tag,
operation and tenant, reference data changes, and a restart from the
changelog with the local state wiped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.support.kafka import read_topics
from tests.support.requests import again, ask, cache_statuses, quote, stats
from tests.support.worker import REPO, WorkerStack
from worker.cache.keys import derive
from worker.operations.quote import QuoteParams
from worker.operations.text_stats import TextStatsParams
from worker.topology import load_topology

pytestmark = pytest.mark.e2e

StackFactory = Callable[..., WorkerStack]


def worker_command(stack: WorkerStack, *args: str) -> str:
    """Run ``worker ARGS`` against ``stack``'s topics; its output."""
    done = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=stack.env,
        cwd=REPO,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


def invalidate(stack: WorkerStack, option: str, value: str) -> None:
    """Publish an invalidation and wait until the worker applied it in all four partitions."""
    before = stack.logs(tail=None).count(f"invalidated {option} {value!r}")
    worker_command(stack, "cache", "invalidate", f"--{option}", value)
    stack.wait_for_log(f"invalidated {option} '{re.escape(value)}'", count=before + 4)


def test_answers_are_served_until_their_ttl_not_found_too_and_never_across_tenants(
    worker_stack: StackFactory,
) -> None:
    stack = worker_stack(
        CACHE_TTL_S='{"price.quote": 4}', CACHE_NOT_FOUND_TTL_S='{"price.quote": 600}'
    )
    stack.start()
    price, text, missing = quote("SKU-1", 2), stats("one two two"), quote("SKU-404")
    first = ask(stack, [price, text, missing])
    answered_at = time.monotonic()
    assert cache_statuses(first) == ["miss", "miss", "miss"]

    second = ask(stack, [again(text), again(missing), stats("one two two", tenant="globex")])
    assert cache_statuses(second) == ["hit", "hit", "miss"], "globex never reads acme's entry"
    assert second[0]["data"] == first[1]["data"]
    assert second[1]["status"] == "error"
    assert second[1]["error"]["code"] == "not_found"

    time.sleep(max(0.0, 4.5 - (time.monotonic() - answered_at)))  # past price.quote's TTL
    [expired] = ask(stack, [again(price)])
    assert expired["meta"]["cache"] == "miss", "an expired entry is never served"
    assert expired["data"] == first[0]["data"]
    assert stack.stop() == 0, stack.logs()

    rows = {
        row["request_id"]: row
        for row in stack.query("SELECT request_id, cache_status, cache_key FROM requests")
    }
    assert rows[second[0]["request_id"]]["cache_status"] == "hit"
    assert rows[expired["request_id"]]["cache_status"] == "miss"
    assert rows[first[0]["request_id"]]["cache_key"] == rows[expired["request_id"]]["cache_key"]
    assert rows[first[0]["request_id"]]["cache_key"].startswith("acme/price.quote/v1/")


def test_invalidation_by_tag_key_operation_and_tenant_reaches_every_partition(
    worker_stack: StackFactory,
) -> None:
    stack = worker_stack()
    stack.start()
    acme_sku1 = [quote("SKU-1", q) for q in range(1, 9)]
    acme_sku2 = [quote("SKU-2", q) for q in range(1, 9)]
    globex = [quote("SKU-2", q, tenant="globex") for q in range(1, 9)]
    texts = [stats(f"text number {i}") for i in range(4)]
    everything = [*acme_sku1, *acme_sku2, *globex, *texts]
    assert set(cache_statuses(ask(stack, everything))) == {"miss"}
    assert set(cache_statuses(ask(stack, [again(s) for s in everything]))) == {"hit"}

    invalidate(stack, "tag", "product:SKU-1")
    bodies = ask(stack, [again(s) for s in everything])
    assert cache_statuses(bodies) == ["miss"] * 8 + ["hit"] * 20

    key = derive("acme", "price.quote", 1, QuoteParams(sku="SKU-2", quantity=1)).text
    invalidate(stack, "key", key)
    assert cache_statuses(ask(stack, [again(s) for s in acme_sku2])) == ["miss"] + ["hit"] * 7

    invalidate(stack, "operation", "text.stats")
    assert set(cache_statuses(ask(stack, [again(s) for s in texts]))) == {"miss"}
    assert set(cache_statuses(ask(stack, [again(s) for s in acme_sku1]))) == {"hit"}

    invalidate(stack, "tenant", "globex")
    assert set(cache_statuses(ask(stack, [again(s) for s in globex]))) == {"miss"}
    assert set(cache_statuses(ask(stack, [again(s) for s in acme_sku2]))) == {"hit"}
    assert stack.stop() == 0, stack.logs()


def test_a_reference_data_change_invalidates_the_answers_that_depend_on_it(
    worker_stack: StackFactory, tmp_path: Path
) -> None:
    stack = worker_stack()
    stack.start()
    beans, grinder_gbp, kettle, unknown = (
        quote("SKU-1", 2),
        quote("SKU-3", 1, "GBP"),  # priced in USD: depends on rate:USD and rate:GBP
        quote("SKU-2", 1),
        quote("SKU-9", 1),
    )
    before = ask(stack, [beans, grinder_gbp, kettle, unknown])
    assert cache_statuses(before) == ["miss"] * 4
    assert before[3]["error"]["code"] == "not_found"
    assert (
        cache_statuses(ask(stack, [again(s) for s in (beans, grinder_gbp, kettle, unknown)]))
        == ["hit"] * 4
    )

    changes = tmp_path / "changes.json"
    changes.write_bytes(
        orjson.dumps(
            {
                "products": [
                    {
                        "sku": "SKU-1",
                        "name": "Espresso beans 1 kg",
                        "unit_price": "30.00",
                        "currency": "EUR",
                    },
                    {"sku": "SKU-9", "name": "Milk jug", "unit_price": "12.00", "currency": "EUR"},
                ],
                "rates": [{"currency": "GBP", "per_eur": "0.90"}],
            }
        )
    )
    worker_command(stack, "reference", "load", str(changes))
    for tag in ("product:SKU-1", "product:SKU-9", "rate:GBP"):
        stack.wait_for_log(f"invalidated tag '{re.escape(tag)}': 1 entries in 4 partitions")

    after = ask(stack, [again(s) for s in (beans, grinder_gbp, kettle, unknown)])
    assert cache_statuses(after) == ["miss", "miss", "hit", "miss"]
    assert after[0]["data"]["total"] == "60.00"
    assert after[1]["data"]["unit_price"] != before[1]["data"]["unit_price"]
    assert after[2]["data"] == before[2]["data"]
    assert (after[3]["status"], after[3]["data"]["name"]) == ("ok", "Milk jug")
    assert stack.stop() == 0, stack.logs()


def test_a_wiped_state_directory_is_restored_from_the_changelog_without_expired_entries(
    worker_stack: StackFactory,
) -> None:
    ttl = 8.0
    stack = worker_stack(
        CACHE_TTL_S=f'{{"text.stats": {ttl}}}',
        CACHE_SWEEP_INTERVAL_S="1",
        # Warming would compute the expired keys again from ClickHouse's rows; this test
        # is about what the changelog alone restores.
        CACHE_WARM_MAX_KEYS="0",
    )
    stack.start()
    lasting, short, forgotten = quote("SKU-2", 3), stats("short lived"), stats("never asked again")
    assert cache_statuses(ask(stack, [lasting, short, forgotten])) == ["miss"] * 3
    written_at = time.monotonic()
    assert stack.stop() == 0, stack.logs()

    shutil.rmtree(stack.root / "data")  # RocksDB, persisted offsets: all local state
    time.sleep(max(0.0, ttl + 0.5 - (time.monotonic() - written_at)))
    stack.start()
    stack.wait_for_log("Restoring state from changelog topics")
    restored = ask(stack, [again(lasting), again(short)])
    assert cache_statuses(restored) == ["hit", "miss"], "restored, but expired is never served"

    # The sweep removes the expired entry that nobody asked for again, with a tombstone.
    topology = load_topology(REPO / "topics" / "topics.toml")
    changelog = stack.kafka.topic(topology.by_role("cache_entries").name)
    key = derive("acme", "text.stats", 1, TextStatsParams(text="never asked again")).raw
    records = read_topics(
        stack.bootstrap,
        [changelog],
        until=lambda seen: any(r.key == key and r.value is None for r in seen),
        timeout_s=60,
        alive=stack.alive,
    )
    assert [r.value is None for r in records if r.key == key] == [False, True]
    assert stack.stop() == 0, stack.logs()
