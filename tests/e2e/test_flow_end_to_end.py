"""The whole flow on the real broker, Redis and chDB, through worker processes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import orjson
import pytest

from tests.support.kafka import Received, counts_reach, produce, read_topics
from tests.support.worker import WorkerStack
from worker.contracts import ResponseEnvelope
from worker.loadgen import TENANTS, SampleRequest, workload

pytestmark = pytest.mark.e2e

#: Both delivery orders: responses beside the insert (the default), and each batch
#: stored before it is answered (``WORKER_RESPOND_FIRST=false``).
ORDERS = pytest.mark.parametrize(
    "respond_first", ["true", "false"], ids=["respond-first", "store-first"]
)


def _by_key(records: list[Received]) -> dict[bytes | None, list[Received]]:
    grouped: dict[bytes | None, list[Received]] = {}
    for record in records:
        grouped.setdefault(record.key, []).append(record)
    return grouped


@ORDERS
def test_every_request_gets_one_response_one_row_and_dead_letters_only_for_rejects(
    worker_stack: Callable[..., WorkerStack], respond_first: str
) -> None:
    stack = worker_stack(WORKER_RESPOND_FIRST=respond_first)
    topics = stack.topics
    samples = stack.sign(workload(1000, 100, run_id=stack.run_id), *TENANTS)
    expected_dead = [s for s in samples if s.dead_letter]
    assert len(expected_dead) >= 80  # every kind of reject is represented

    produce(stack.bootstrap, topics.requests, samples)
    stack.start()

    received = read_topics(
        stack.bootstrap,
        [topics.responses, topics.dead_letters],
        until=counts_reach(
            {topics.responses: len(samples), topics.dead_letters: len(expected_dead)}
        ),
        timeout_s=180,
        settle_s=3,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()

    responses = _by_key([r for r in received if r.topic == topics.responses])
    dead = _by_key([r for r in received if r.topic == topics.dead_letters])
    assert sum(len(v) for v in responses.values()) == len(samples), "one response per request"
    assert sum(len(v) for v in dead.values()) == len(expected_dead), "nothing else dead-lettered"

    for sample in samples:
        [response] = responses[sample.key]
        body = ResponseEnvelope.model_validate(orjson.loads(response.value))
        assert body.status == sample.status, (sample, body)
        # Unparseable requests are answered with the signed request-id header's id.
        assert body.request_id == (sample.request_id or (sample.key or b"").decode())
        if sample.code is None:
            assert body.error is None
            assert body.data
        else:
            assert body.error is not None
            assert body.error.code == sample.code, (sample, body.error)
        if sample.dead_letter:
            [letter] = dead[sample.key]
            assert letter.value == sample.value, "the original bytes, unchanged"
            assert letter.headers["dlq-reason"] == sample.code.encode()  # type: ignore[union-attr]
            assert int(letter.headers["dlq-source-offset"]) >= 0
        else:
            assert sample.key not in dead

    [totals] = stack.query(
        "SELECT count() AS rows, uniqExact(source_partition, source_offset) AS positions "
        "FROM requests"
    )
    assert totals == {"rows": len(samples), "positions": len(samples)}
    by_code = {
        (row["status"], row["error_code"]): row["n"]
        for row in stack.query(
            "SELECT status, error_code, count() AS n FROM requests GROUP BY status, error_code"
        )
    }
    assert by_code == Counter((s.status, s.code or "") for s in samples)
    ids = {row["request_id"] for row in stack.query("SELECT request_id FROM requests")}
    assert {s.request_id for s in samples if s.request_id} <= ids


@ORDERS
def test_restart_on_the_same_data_continues_without_losing_or_duplicating(
    worker_stack: Callable[..., WorkerStack], respond_first: str
) -> None:
    stack = worker_stack(WORKER_RESPOND_FIRST=respond_first)
    topics = stack.topics
    first = stack.sign(workload(3000, 0, run_id=f"{stack.run_id}a"), *TENANTS)
    second = stack.sign(workload(1000, 0, run_id=f"{stack.run_id}b", seed=11), *TENANTS)

    produce(stack.bootstrap, topics.requests, first)
    stack.start()
    read_topics(
        stack.bootstrap,
        [topics.responses],
        until=lambda seen: len(seen) >= 500,
        timeout_s=120,
        alive=stack.alive,
    )
    stack.kill()  # mid-stream, with batches in flight and offsets not yet committed

    stack.start()
    produce(stack.bootstrap, topics.requests, second)
    want = {s.key for s in (*first, *second)}
    received = read_topics(
        stack.bootstrap,
        [topics.responses],
        until=lambda seen: want <= {r.key for r in seen},
        timeout_s=180,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()

    assert want <= {r.key for r in received}, "every request answered at least once"
    [totals] = stack.query("SELECT count() AS rows, uniqExact(request_id) AS ids FROM requests")
    assert totals == {"rows": len(want), "ids": len(want)}, "one row per request, no duplicates"


def test_a_tenant_over_its_rate_is_answered_rate_limited_with_retry_after(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    # A bucket of 40 that practically never refills: exactly 40 requests pass.
    stack = worker_stack(LIMITS_RATE_BURST="40", LIMITS_RATE_PER_SECOND="0.001")
    topics = stack.topics
    samples = [
        SampleRequest(
            f"rl-{i}".encode(),
            orjson.dumps(
                {
                    "request_id": f"rl-{i}",
                    "tenant": "greedy" if i < 100 else "modest",
                    "operation": "text.stats",
                    "params": {"text": "a b c"},
                    "created_at": "2026-01-01T00:00:00Z",
                }
            ),
            f"rl-{i}",
            "ok",
            None,
            False,
        )
        for i in range(110)
    ]
    samples = stack.sign(samples, "greedy", "modest")
    produce(stack.bootstrap, topics.requests, samples)
    stack.start()
    received = read_topics(
        stack.bootstrap,
        [topics.responses],
        until=lambda seen: len(seen) >= len(samples),
        timeout_s=120,
        settle_s=1,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()

    bodies = [ResponseEnvelope.model_validate(orjson.loads(r.value)) for r in received]
    assert len(bodies) == len(samples)
    greedy = [b for b in bodies if b.meta.tenant == "greedy"]
    modest = [b for b in bodies if b.meta.tenant == "modest"]
    assert Counter(b.status for b in greedy) == {"ok": 40, "error": 60}
    limited = [b.error for b in greedy if b.error is not None]
    assert {e.code for e in limited} == {"rate_limited"}
    assert all(e.details["retry_after_ms"] > 0 for e in limited)
    assert all(b.status == "ok" for b in modest), "another tenant's bucket is untouched"
