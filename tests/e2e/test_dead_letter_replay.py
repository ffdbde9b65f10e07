"""Dead-letter replay: exactly the filtered messages go back to requests, and are processed.

The story an operator lives: a size limit was too low, so large requests of a
tenant were dead-lettered ``payload_too_large``. After the limit is raised,
``worker dlq replay --reason payload_too_large --tenant acme`` puts exactly
those back; the worker answers them ``ok`` this time, and nothing else moves.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import orjson
import pytest

from tests.support.kafka import Received, counts_reach, produce, read_topics
from tests.support.worker import REPO, WorkerStack
from worker.loadgen import SampleRequest

pytestmark = pytest.mark.e2e

SMALL_LIMIT = "250"  # the big requests are about 300 bytes, the small about 160


def request(request_id: str, tenant: str, *, big: bool) -> SampleRequest:
    """A quote request; a big one carries a long correlation id that breaks the small limit.

    ``price.quote`` has no sensitive params, so its dead letters keep their bytes
    unredacted and their signatures still verify when replayed.
    """
    body: dict[str, object] = {
        "request_id": request_id,
        "tenant": tenant,
        "operation": "price.quote",
        "params": {"sku": "SKU-1", "quantity": 1},
        "created_at": "2026-11-27T12:00:00Z",
    }
    if big:
        body["correlation_id"] = "c" * 128
    return SampleRequest(request_id.encode(), orjson.dumps(body), request_id, "ok", None, False)


def worker_cli(stack: WorkerStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**stack.env, "COLUMNS": "250"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def assert_republished_exactly(
    stack: WorkerStack, before: int, chosen: list[SampleRequest]
) -> None:
    """The requests topic got ``chosen`` again: same key and value, marked, no dlq-* headers."""
    topics = stack.topics
    requests_log = read_topics(
        stack.bootstrap,
        [topics.requests],
        until=lambda seen: len(seen) >= before + len(chosen),
        timeout_s=60,
        settle_s=2,
    )
    assert len(requests_log) == before + len(chosen)
    again = [r for r in requests_log if "replayed-from" in r.headers]
    assert sorted(r.key or b"" for r in again) == sorted(r.key or b"" for r in chosen)
    originals = {r.key: r.value for r in chosen}
    for record in again:
        assert record.value == originals[record.key]
        assert not [name for name in record.headers if name.startswith("dlq-")]
        assert record.headers["replayed-from"].startswith(f"{topics.dead_letters}:".encode())


def test_replay_republishes_exactly_the_filtered_dead_letters_and_they_are_processed(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(LIMITS_MAX_MESSAGE_BYTES=SMALL_LIMIT)
    topics = stack.topics
    big_acme = stack.sign(
        [request(f"{stack.run_id}-big-acme-{i}", "acme", big=True) for i in range(6)], "acme"
    )
    big_globex = stack.sign(
        [request(f"{stack.run_id}-big-globex-{i}", "globex", big=True) for i in range(4)],
        "globex",
    )
    small = stack.sign(
        [request(f"{stack.run_id}-small-{i}", "acme", big=False) for i in range(20)], "acme"
    )
    # Signed, so that they pass authentication and are rejected by the decoder.
    broken = stack.sign(
        [
            SampleRequest(
                f"{stack.run_id}-broken-{i}".encode(), b"{nope", None, "error", None, True
            )
            for i in range(5)
        ],
        "acme",
    )
    everything = [*big_acme, *small, *big_globex, *broken]
    produce(stack.bootstrap, topics.requests, everything)
    dead_count = len(big_acme) + len(big_globex) + len(broken)

    stack.start()

    read_topics(
        stack.bootstrap,
        [topics.responses, topics.dead_letters],
        until=counts_reach({topics.responses: len(everything), topics.dead_letters: dead_count}),
        timeout_s=120,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()

    # What the filter selects: acme's large requests only.
    filters = ["--reason", "payload_too_large", "--tenant", "acme", "--since", "1h"]
    inspected = worker_cli(stack, "dlq", "inspect", *filters, "--format", "json", "--limit", "0")
    assert inspected.returncode == 0, inspected.stderr
    listed = [orjson.loads(line) for line in inspected.stdout.splitlines()]
    assert sorted(d["request_id"] for d in listed) == sorted(r.request_id for r in big_acme)
    assert {d["reason"] for d in listed} == {"payload_too_large"}

    nothing = worker_cli(stack, "dlq", "replay", *filters, "--until", "2h", "--yes")
    assert nothing.returncode == 0, nothing.stderr
    assert "0 dead letters match" in nothing.stderr

    replayed = worker_cli(stack, "dlq", "replay", *filters, "--yes")
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {len(big_acme)} messages to {topics.requests}" in replayed.stdout

    assert_republished_exactly(stack, len(everything), big_acme)

    # With the limit raised, the worker processes them: answered ok, stored ok.
    stack.extra_env["LIMITS_MAX_MESSAGE_BYTES"] = "262144"
    stack.start()
    acme_keys = {r.key for r in big_acme}

    def answered_ok(seen: list[Received]) -> bool:
        ok = {r.key for r in seen if orjson.loads(r.value)["status"] == "ok"}
        return acme_keys <= ok

    responses = read_topics(
        stack.bootstrap,
        [topics.responses],
        until=answered_ok,
        timeout_s=120,
        settle_s=3,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()
    statuses: dict[bytes | None, list[str]] = {}
    for record in responses:
        statuses.setdefault(record.key, []).append(orjson.loads(record.value)["status"])
    for sample in big_acme:
        assert statuses[sample.key] == ["error", "ok"], "dead-lettered first, answered on replay"
    for sample in (*big_globex, *small, *broken):
        assert len(statuses[sample.key]) == 1, "not replayed, so answered once"

    # Each big acme request has its first answer (payload_too_large, stored without a
    # tenant: it was never parsed) and, after the replay, its ok row.
    rows = stack.query(
        "SELECT request_id, status FROM requests FINAL WHERE request_id LIKE '%-big-acme-%'"
    )
    assert Counter((row["request_id"], row["status"]) for row in rows) == Counter(
        [(r.request_id, "ok") for r in big_acme] + [(r.request_id, "error") for r in big_acme]
    )
    # A request too large to parse is stored under its position (its id is never read).
    [too_large] = stack.query(
        "SELECT count() AS n FROM requests WHERE error_code = 'payload_too_large'"
    )
    assert too_large["n"] == len(big_acme) + len(big_globex), "the replay failed nothing again"

    letters = read_topics(
        stack.bootstrap,
        [topics.dead_letters],
        until=lambda seen: len(seen) >= dead_count,
        timeout_s=60,
        settle_s=1,
    )
    assert len(letters) == dead_count, "the replayed requests did not fail again"
