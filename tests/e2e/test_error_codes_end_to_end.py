"""Every answer and dead-letter reason the flow can give, through the real broker and Redis.

One worker serves a request per client error code (and a few successes: a JWT,
a replay, an allowlisted reply-to, compressed output). Workers pointed at a
closed Redis port show the server errors that are retried and then
dead-lettered with their reason (``cache_unavailable``,
``rate_limiter_unavailable``) and the rate limiter's ``allow`` policy; a corrupt
credential in Redis shows ``system_failed``. (``service_failed`` and
``database_unavailable`` need a failing operation or ClickHouse, which a worker
process cannot be made to have from outside; their path is unit-tested in
tests/unit/flow/test_deliver.py.)
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.jwks import AUDIENCE, ISSUER, Issuer
from tests.support.kafka import Received, produce, read_topics
from tests.support.worker import REPO, WorkerStack, free_port
from worker.auth import signing
from worker.auth.keys import KeyMaterial
from worker.loadgen import SampleRequest

pytestmark = pytest.mark.e2e

NOW = "2026-01-01T00:00:00Z"
PLANS = """
[plans.tiny]
rate_per_second = 0.001
burst = 2

[tenants]
greedy = "tiny"
"""


def envelope(request_id: str, tenant: str = "acme", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id,
        "tenant": tenant,
        "operation": "price.quote",
        "params": {"sku": "SKU-1", "quantity": 1},
        "created_at": NOW,
        "correlation_id": request_id,  # names the answer even when request ids repeat
    }
    body.update(overrides)
    return body


def sample(
    request_id: str,
    value: bytes | dict[str, Any],
    key: KeyMaterial | None,
    *,
    signed_id: str | None = None,
    timestamp: int | None = None,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> SampleRequest:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    if key is not None:
        headers = (
            *headers,
            *signing.sign(
                raw,
                key_id=key.key_id,
                secrets={key.version: key.secret.encode()},
                request_id=signed_id or request_id,
                timestamp=timestamp,
            ),
        )
    return SampleRequest(request_id.encode(), raw, request_id, "", None, False, headers)


def tampered(request: SampleRequest) -> SampleRequest:
    """``request`` with its body changed after signing: the signature no longer matches."""
    return replace(request, value=request.value.replace(b'"quantity":1', b'"quantity":2'))


def by_request(records: list[Received]) -> dict[str, dict[str, Any]]:
    bodies = {}
    for record in records:
        body = orjson.loads(record.value)
        body["_topic"] = record.topic
        body["_headers"] = record.headers
        label = body["meta"]["correlation_id"] or (record.key or b"").decode()
        bodies[label] = body
    return bodies


def create_topic(bootstrap: str, name: str) -> None:
    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, 1, 1)])
        finally:
            await admin.close()

    asyncio.run(run())


def compression_codecs(topic: str) -> Counter[int]:
    """The compression codec of every record batch the broker stored for ``topic``."""
    data = Path(os.environ.get("SERVICES_DIR", REPO / ".services")) / "kafka" / "data"
    codecs: Counter[int] = Counter()
    for segment in data.glob(f"{topic}-*/*.log"):
        raw = segment.read_bytes()
        position = 0
        while position + 23 <= len(raw):
            (length,) = struct.unpack_from(">i", raw, position + 8)
            (attributes,) = struct.unpack_from(">h", raw, position + 21)
            codecs[attributes & 0x07] += 1
            position += 12 + length
    return codecs


def test_every_client_error_code_is_answered_through_the_real_stack(  # noqa: PLR0915 - one story
    worker_stack: Callable[..., WorkerStack], tmp_path: Path
) -> None:
    issuer = Issuer()
    plans = tmp_path / "plans.toml"
    plans.write_text(PLANS)
    stack = worker_stack(
        KAFKA_COMPRESSION="zstd",
        LIMITS_MAX_MESSAGE_BYTES="4096",
        LIMITS_MAX_STRING_LENGTH="200",
        LIMITS_MAX_ARRAY_LENGTH="20",
        LIMITS_PLANS_FILE=str(plans),
        SECURITY_AUTH_MODES="hmac,jwt",
        SECURITY_CREDENTIAL_CACHE_TTL_S="1",
        SECURITY_JWT_JWKS_FILE=str(issuer.write_jwks(tmp_path / "jwks.json")),
        SECURITY_JWT_ISSUER=ISSUER,
        SECURITY_JWT_AUDIENCE=AUDIENCE,
        SECURITY_JWT_ALGORITHMS="RS256",
    )
    replies = f"{stack.run_id}.replies"
    stack.extra_env["KAFKA_REPLY_TO_ALLOWLIST"] = replies
    create_topic(stack.bootstrap, replies)
    topics = stack.topics
    acme = stack.key_for("acme")
    greedy = stack.key_for("greedy")
    text_only = stack.key_for("acme", scopes=frozenset({"text:analyze"}))
    doomed = stack.key_for("acme", scopes=frozenset({"price:read"}))

    first = [
        sample("ok", envelope("ok"), acme),
        sample("too-large", b"{" + b" " * 5000 + b"}", acme),
        sample("bad-json", b'{"request_id": oops', acme),
        sample("too-deep", b"[" * 40 + b"]" * 40, acme),
        sample(
            "long-string", envelope("long-string", params={"sku": "S" * 300, "quantity": 1}), acme
        ),
        sample("long-array", envelope("long-array", fields=["total"] * 30), acme),
        sample(
            "wrong-type", envelope("wrong-type", params={"sku": "SKU-1", "quantity": "1"}), acme
        ),
        sample("unknown-op", envelope("unknown-op", operation="no.such.op"), acme),
        sample("unsigned", envelope("unsigned"), None),
        sample(
            "bad-signature",
            envelope("bad-signature"),
            acme,
            signed_id="bad-signature",
            timestamp=None,
            headers=(),
        ),
        sample("stale", envelope("stale"), acme, timestamp=int(time.time()) - 7200),
        sample("other-tenant", envelope("other-tenant", tenant="globex"), acme),
        sample("no-scope", envelope("no-scope"), text_only),
        sample("not-found", envelope("not-found", params={"sku": "SKU-404", "quantity": 1}), acme),
        sample("original", envelope("original"), acme),
        sample("doomed-ok", envelope("doomed-ok"), doomed),
        sample("reply", envelope("reply", reply_to=replies), acme),
        sample("reply-refused", envelope("reply-refused", reply_to=topics.dead_letters), acme),
        sample(
            "jwt",
            envelope("jwt", tenant="globex"),
            None,
            headers=(("authorization", f"Bearer {issuer.token(tenant='globex')}".encode()),),
        ),
        *(
            sample(f"greedy-{i}", envelope(f"greedy-{i}", tenant="greedy"), greedy)
            for i in range(4)
        ),
    ]
    # Flip one byte of the body after signing: the signature no longer matches.
    tampered = first[9]
    first[9] = SampleRequest(
        tampered.key,
        tampered.value.replace(b'"quantity":1', b'"quantity":2'),
        tampered.request_id,
        "",
        None,
        False,
        tampered.headers,
    )
    produce(stack.bootstrap, topics.requests, first)
    stack.start()
    seen = read_topics(
        stack.bootstrap,
        [topics.responses, replies],
        until=lambda records: len(records) >= len(first),
        timeout_s=180,
        alive=stack.alive,
    )

    # Phase two: a replay, a conflicting reuse, and a key revoked after it was used.
    stack.key_manager_run(lambda manager: manager.revoke(doomed.key_id))
    time.sleep(2.5)  # past SECURITY_CREDENTIAL_CACHE_TTL_S=1: the bound on revocation
    replayed = envelope("original", correlation_id="original:replay")
    conflicting = envelope(
        "original", params={"sku": "SKU-2", "quantity": 5}, correlation_id="original:conflict"
    )
    second = [
        sample("original", replayed, acme),
        sample("original", conflicting, acme),
        sample("doomed-after", envelope("doomed-after"), doomed),
    ]
    produce(stack.bootstrap, topics.requests, second)
    seen = read_topics(
        stack.bootstrap,
        [topics.responses, replies, topics.dead_letters],
        until=lambda records: (
            sum(r.topic != topics.dead_letters for r in records) >= len(first) + len(second)
        ),
        timeout_s=180,
        settle_s=2,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()
    responses = [r for r in seen if r.topic != topics.dead_letters]
    dead = [r for r in seen if r.topic == topics.dead_letters]
    assert len(responses) == len(first) + len(second), "one answer per request"
    answers = by_request(responses)

    def code(request_id: str) -> str | None:
        error = answers[request_id]["error"]
        return None if error is None else str(error["code"])

    expected = {
        "ok": None,
        "too-large": "payload_too_large",
        "bad-json": "invalid_payload",
        "too-deep": "payload_too_deep",
        "long-string": "string_too_long",
        "long-array": "array_too_long",
        "wrong-type": "validation_failed",
        "unknown-op": "unknown_operation",
        "unsigned": "unauthenticated",
        "bad-signature": "unauthenticated",
        "stale": "unauthenticated",
        "other-tenant": "forbidden",
        "no-scope": "forbidden",
        "not-found": "not_found",
        "doomed-ok": None,
        "doomed-after": "unauthenticated",
        "original:conflict": "conflict",
        "original:replay": None,
        "jwt": None,
        "reply": None,
        "reply-refused": None,
    }
    assert {request_id: code(request_id) for request_id in expected} == expected
    assert answers["bad-signature"]["error"]["details"]["reason"] == "bad_signature"
    assert answers["stale"]["error"]["details"]["reason"] == "stale"
    assert answers["doomed-after"]["error"]["details"]["reason"] == "revoked"
    greedy_codes = Counter(code(f"greedy-{i}") for i in range(4))
    assert greedy_codes == {None: 2, "rate_limited": 2}
    limited = [answers[f"greedy-{i}"] for i in range(4) if code(f"greedy-{i}")]
    assert all(a["error"]["details"]["retry_after_ms"] > 0 for a in limited)

    replay, original = answers["original:replay"], answers["original"]
    assert replay["data"] == original["data"]
    assert replay["meta"]["cache"] == "hit"
    assert replay["meta"]["replayed_from"] == original["meta"]["source"]
    assert answers["jwt"]["meta"]["tenant"] == "globex"
    assert answers["reply"]["_topic"] == replies
    assert answers["reply-refused"]["_topic"] == topics.responses
    assert answers["reply-refused"]["_headers"]["reply-to-refused"] == topics.dead_letters.encode()

    # The client layer's rejects are dead-lettered; the API layer's answers are not.
    reasons = Counter(r.headers["dlq-reason"].decode() for r in dead)
    assert reasons == {
        "payload_too_large": 1,
        "invalid_payload": 1,
        "payload_too_deep": 1,
        "string_too_long": 1,
        "array_too_long": 1,
        "validation_failed": 1,
        "unknown_operation": 1,
    }
    codecs = compression_codecs(topics.responses)
    assert codecs, "the broker stored response batches"
    assert set(codecs) == {4}, f"every response batch is zstd-compressed: {codecs}"


def closed_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def unsigned(count: int, prefix: str) -> list[SampleRequest]:
    return [sample(f"{prefix}-{i}", envelope(f"{prefix}-{i}"), None) for i in range(count)]


def test_redis_down_dead_letters_past_the_retry_budget_with_the_reason(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(
        REDIS_URL=closed_redis(),
        REDIS_SOCKET_TIMEOUT_S="0.5",
        WORKER_RETRY_BUDGET_S="2",
        SECURITY_AUTH_MODES="hmac",
    )
    topics = stack.topics
    fake_key = KeyMaterial("rk_0123456789abcdef", 1, "not-a-real-secret")
    requests = [sample(f"down-{i}", envelope(f"down-{i}"), fake_key) for i in range(5)]
    produce(stack.bootstrap, topics.requests, requests)
    stack.start()
    seen = read_topics(
        stack.bootstrap,
        [topics.responses, topics.dead_letters],
        until=lambda records: len(records) >= len(requests),
        timeout_s=180,
        settle_s=3,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()
    assert [r.topic for r in seen] == [topics.dead_letters] * len(requests), "no answers"
    assert {r.headers["dlq-reason"] for r in seen} == {b"cache_unavailable"}
    assert sorted(int(r.headers["dlq-source-offset"]) for r in seen) == sorted(
        range(len(requests))
    ) or len(
        {(r.headers["dlq-source-partition"], r.headers["dlq-source-offset"]) for r in seen}
    ) == len(requests)


def test_the_rate_limiter_policy_when_redis_is_down_allow_then_reject(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(
        REDIS_URL=closed_redis(),
        REDIS_SOCKET_TIMEOUT_S="0.5",
        WORKER_RETRY_BUDGET_S="2",
        SECURITY_AUTH_MODES="none",
        SECURITY_IDEMPOTENCY_TTL_S="0",
        LIMITS_ON_REDIS_UNAVAILABLE="allow",
    )
    topics = stack.topics
    allowed = unsigned(5, "allow")
    produce(stack.bootstrap, topics.requests, allowed)
    stack.start()
    seen = read_topics(
        stack.bootstrap,
        [topics.responses, topics.dead_letters],
        until=lambda records: len(records) >= len(allowed),
        timeout_s=180,
        settle_s=2,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()
    assert [r.topic for r in seen] == [topics.responses] * len(allowed)
    assert {orjson.loads(r.value)["status"] for r in seen} == {"ok"}, "served unlimited"

    stack.extra_env["LIMITS_ON_REDIS_UNAVAILABLE"] = "reject"
    rejected = unsigned(5, "reject")
    produce(stack.bootstrap, topics.requests, rejected)
    stack.start()
    seen = read_topics(
        stack.bootstrap,
        [topics.responses, topics.dead_letters],
        until=lambda records: len(records) >= len(allowed) + len(rejected),
        timeout_s=180,
        settle_s=3,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()
    dead = [r for r in seen if r.topic == topics.dead_letters]
    assert len(seen) == len(allowed) + len(rejected), "the first run's answers, then dead letters"
    assert {r.key for r in dead} == {s.key for s in rejected}
    assert {r.headers["dlq-reason"] for r in dead} == {b"rate_limiter_unavailable"}


def test_a_corrupt_stored_credential_is_a_system_failure_dead_letter(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(WORKER_RETRY_BUDGET_S="2")
    topics = stack.topics
    good = stack.key_for("acme")
    corrupt = KeyMaterial("rk_corrupt000000000", 1, "whatever")
    redis.Redis.from_url(stack.redis_url).set(f"{stack.run_id}:cred:{corrupt.key_id}", b"{not json")
    requests = [
        sample("corrupt", envelope("corrupt"), corrupt),
        sample("fine", envelope("fine"), good),
    ]
    # Separate batches: a batch is dead-lettered as a whole.
    produce(stack.bootstrap, topics.requests, requests[:1])
    stack.start()
    seen = read_topics(
        stack.bootstrap,
        [topics.dead_letters],
        until=lambda records: len(records) >= 1,
        timeout_s=180,
        alive=stack.alive,
    )
    produce(stack.bootstrap, topics.requests, requests[1:])
    seen = read_topics(
        stack.bootstrap,
        [topics.responses, topics.dead_letters],
        until=lambda records: len(records) >= 2,
        timeout_s=180,
        settle_s=2,
        alive=stack.alive,
    )
    assert stack.stop() == 0, stack.logs()
    by_topic = {r.topic: r for r in seen}
    assert len(seen) == 2
    assert by_topic[topics.dead_letters].headers["dlq-reason"] == b"system_failed"
    assert by_topic[topics.dead_letters].key == b"corrupt"
    assert orjson.loads(by_topic[topics.responses].value)["status"] == "ok", "the worker went on"
