"""Every answer and dead-letter reason the flow can give, through the real broker and Redis.

Client errors: one worker serves a request per client error code (and a few
successes: a JWT, a replay, an allowlisted reply-to, compressed output); each
is answered, and the client layer's rejects are dead-lettered too.

Server errors: a worker with a short retry budget meets a real failure, retries
it (the logs show each attempt), then dead-letters the batch with the code and
the reason, answering nothing, and goes on with the next batch:

- ``cache_unavailable`` and ``rate_limiter_unavailable``: Redis at a closed port;
- ``system_failed``: a corrupt credential stored in Redis;
- ``service_failed``: an operation whose backend fails
  (``WORKER_FAULT_FAILING_OPERATIONS``);
- ``database_unavailable`` and ``database_overloaded``: ClickHouse switched off,
  or answering TOO_MANY_PARTS (``WORKER_FAULT_CLICKHOUSE_DOWN_FILE``);
- ``publish_failed``: a reply topic whose ``max.message.bytes`` the broker
  enforces, refusing the response.

Nothing is lost: every request ends as a response, a row or a dead letter.
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.jwks import AUDIENCE, ISSUER, Issuer
from tests.support.kafka import Received, produce, read_topics
from tests.support.requests import quote, stats
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
#: Seconds a server error is retried before its batch is dead-lettered, in these tests.
BUDGET_S = 2


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
    """A request, signed with ``key`` (as given: for the tests of what a signature covers)."""
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


def create_topic(bootstrap: str, name: str, **configs: str) -> None:
    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
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
        KAFKA_COMPRESSION="lz4",
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
        tampered(sample("bad-signature", envelope("bad-signature"), acme)),
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
    assert set(codecs) == {3}, f"every response batch is lz4-compressed: {codecs}"


# Server errors: retried, then dead-lettered with the reason, never answered.


@dataclass(frozen=True)
class Outcome:
    """What became of some requests: their answers and their dead letters."""

    answers: list[Received]
    letters: list[Received]


@dataclass
class Exchange:
    """A worker stack fed requests and read back on its responses and dead-letter topics."""

    stack: WorkerStack

    def send(self, requests: Sequence[SampleRequest], *, also: Sequence[str] = ()) -> Outcome:
        """Publish ``requests``, starting the worker if it is not running, and wait until each
        has an answer or a dead letter (on ``also`` too); then read on a little, to see
        that nothing more comes."""
        stack = self.stack
        topics = stack.topics
        keys = {request.key for request in requests}
        produce(stack.bootstrap, topics.requests, requests)
        if not stack.alive():
            stack.start()
        seen = read_topics(
            stack.bootstrap,
            [topics.responses, topics.dead_letters, *also],
            until=lambda records: keys <= {record.key for record in records},
            timeout_s=180,
            settle_s=2,
            alive=stack.alive,
        )
        mine = [record for record in seen if record.key in keys]
        return Outcome(
            answers=[record for record in mine if record.topic != topics.dead_letters],
            letters=[record for record in mine if record.topic == topics.dead_letters],
        )

    def rows(self) -> dict[str, tuple[str, str]]:
        """``(status, error_code)`` of every stored request, by request id."""
        return {
            row["request_id"]: (row["status"], row["error_code"])
            for row in self.stack.query("SELECT request_id, status, error_code FROM requests FINAL")
        }

    def stop(self) -> str:
        """Stop the worker gracefully; its logs, every run."""
        assert self.stack.stop() == 0, self.stack.logs()
        return self.stack.logs()


@pytest.fixture
def exchange(worker_stack: Callable[..., WorkerStack]) -> Callable[..., Exchange]:
    """Factory: an exchange whose worker gives server errors up after ``BUDGET_S`` seconds."""

    def make(**env: str) -> Exchange:
        return Exchange(worker_stack(WORKER_RETRY_BUDGET_S=str(BUDGET_S), **env))

    return make


def assert_given_up(
    outcome: Outcome, requests: Sequence[SampleRequest], code: str, reason: str
) -> None:
    """No answer at all; one dead letter per request, with the code and the reason."""
    assert outcome.answers == [], "a server error is never answered as if the client were wrong"
    assert sorted(letter.key or b"" for letter in outcome.letters) == sorted(
        request.key or b"" for request in requests
    ), "one dead letter per request"
    for letter in outcome.letters:
        assert letter.headers["dlq-reason"] == code.encode()
        assert reason in letter.headers["dlq-message"].decode(), letter.headers["dlq-message"]
    positions = {
        (letter.headers["dlq-source-partition"], letter.headers["dlq-source-offset"])
        for letter in outcome.letters
    }
    assert len(positions) == len(requests), "each names the position it was read at"


def assert_retried(logs: str, code: str, attempt: str = "") -> None:
    """The logs show the failing step retried more than once, then the budget spent on ``code``.

    ``attempt`` matches a retry's log line (default: the batch handler's).
    """
    retries = re.findall(attempt or rf"failed \[{code}\], retrying in", logs)
    assert len(retries) >= 2, f"retried with backoff before giving up: {retries}"
    assert f"retry budget of {BUDGET_S:.1f}s spent on [{code}]" in logs


def assert_went_on(after: Outcome) -> None:
    """The request sent after the failure was answered: the worker went on."""
    assert after.letters == []
    assert [orjson.loads(answer.value)["status"] for answer in after.answers] == ["ok"]


def closed_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def unsigned(count: int, prefix: str) -> list[SampleRequest]:
    return [sample(f"{prefix}-{i}", envelope(f"{prefix}-{i}"), None) for i in range(count)]


def test_redis_down_is_cache_unavailable_retried_then_dead_lettered(
    exchange: Callable[..., Exchange],
) -> None:
    run = exchange(
        REDIS_URL=closed_redis(), REDIS_SOCKET_TIMEOUT_S="0.5", SECURITY_AUTH_MODES="hmac"
    )
    # Signed with a key in the real Redis; the worker looks it up in a Redis that is not there.
    requests = run.stack.sign(unsigned(5, "down"))
    outcome = run.send(requests)
    logs = run.stop()
    assert_given_up(outcome, requests, "cache_unavailable", "credential store unavailable")
    assert_retried(logs, "cache_unavailable")
    assert run.rows() == {r.request_id: ("dead_letter", "cache_unavailable") for r in requests}


def test_the_rate_limiter_policy_when_redis_is_down_allow_then_reject(
    exchange: Callable[..., Exchange],
) -> None:
    run = exchange(
        REDIS_URL=closed_redis(),
        REDIS_SOCKET_TIMEOUT_S="0.5",
        SECURITY_AUTH_MODES="none",
        SECURITY_IDEMPOTENCY_TTL_S="0",
        LIMITS_ON_REDIS_UNAVAILABLE="allow",
    )
    allowed = unsigned(5, "allow")
    served = run.send(allowed)
    run.stop()
    assert served.letters == []
    assert {orjson.loads(r.value)["status"] for r in served.answers} == {"ok"}, "served unlimited"
    assert len(served.answers) == len(allowed)

    run.stack.extra_env["LIMITS_ON_REDIS_UNAVAILABLE"] = "reject"
    rejected = unsigned(5, "reject")
    outcome = run.send(rejected)
    logs = run.stop()
    assert_given_up(outcome, rejected, "rate_limiter_unavailable", "rate limiter unavailable")
    assert_retried(logs, "rate_limiter_unavailable")


def test_a_corrupt_stored_credential_is_system_failed_then_the_worker_goes_on(
    exchange: Callable[..., Exchange],
) -> None:
    run = exchange()
    stack = run.stack
    corrupt = KeyMaterial("rk_corrupt000000000", 1, "whatever")
    redis.Redis.from_url(stack.redis_url).set(f"{stack.run_id}:cred:{corrupt.key_id}", b"{not json")
    # Separate batches: a batch is dead-lettered as a whole.
    doomed = [sample("corrupt", envelope("corrupt"), corrupt)]
    outcome = run.send(doomed)
    after = run.send(stack.sign(unsigned(1, "fine")))
    rows = run.rows()
    logs = run.stop()
    assert_given_up(outcome, doomed, "system_failed", "is corrupt")
    assert_retried(logs, "system_failed")
    assert_went_on(after)
    assert rows == {"corrupt": ("dead_letter", "system_failed"), "fine-0": ("ok", "")}


def test_a_failing_operation_is_service_failed_and_its_dead_letters_are_redacted(
    exchange: Callable[..., Exchange],
) -> None:
    run = exchange(WORKER_FAULT_FAILING_OPERATIONS="text.stats")
    private = "zebra quokka diary"
    failing = run.stack.sign([stats(f"{private} {i}") for i in range(3)])
    outcome = run.send(failing)
    after = run.send(run.stack.sign([quote("SKU-1")]))
    rows = run.rows()
    logs = run.stop()
    assert_given_up(outcome, failing, "service_failed", "text.stats: its backend is unreachable")
    assert_retried(logs, "service_failed")
    for letter in outcome.letters:
        assert letter.headers["dlq-redacted"] == b"params.text"
        assert private.encode() not in letter.value
    assert private not in logs
    assert_went_on(after)
    assert rows == {
        **{r.request_id: ("dead_letter", "service_failed") for r in failing},
        (after.answers[0].key or b"").decode(): ("ok", ""),
    }


@pytest.mark.parametrize(
    ("failure", "code", "reason"),
    [
        ("", "database_unavailable", "Connection refused"),
        ("too_many_parts", "database_overloaded", "TOO_MANY_PARTS"),
    ],
    ids=["unreachable", "too-many-parts"],
)
@pytest.mark.parametrize("respond_first", [True, False], ids=["respond-first", "store-first"])
def test_clickhouse_failing_is_retried_then_dead_lettered_without_rows(
    exchange: Callable[..., Exchange],
    tmp_path: Path,
    *,
    failure: str,
    code: str,
    reason: str,
    respond_first: bool,
) -> None:
    flag = tmp_path / "clickhouse-down"
    run = exchange(
        WORKER_FAULT_CLICKHOUSE_DOWN_FILE=str(flag),
        CLICKHOUSE_INSERT_RETRY_MAX_S="0.5",
        WORKER_RESPOND_FIRST=str(respond_first).lower(),
    )
    # Answered first: the worker has started and migrated before ClickHouse goes away.
    before = run.send(run.stack.sign([quote("SKU-1")]))
    flag.write_text(failure)
    requests = run.stack.sign([quote("SKU-2") for _ in range(3)])
    outcome = run.send(requests)
    flag.unlink()
    after = run.send(run.stack.sign([quote("SKU-3")]))
    rows = run.rows()
    logs = run.stop()
    if respond_first:
        # Answered before the insert failed: the answers stand, and each request's
        # dead letter says its row is what is missing.
        assert [orjson.loads(a.value)["status"] for a in outcome.answers] == ["ok"] * 3
        assert all(letter.headers["dlq-answered"] == b"true" for letter in outcome.letters)
        outcome = Outcome(answers=[], letters=outcome.letters)
    else:
        assert all("dlq-answered" not in letter.headers for letter in outcome.letters)
    assert_given_up(outcome, requests, code, reason)
    assert_retried(logs, code, attempt=r"ClickHouse insert of .+? \(\d+ rows\) failed")
    answered = [*before.answers, *after.answers]
    assert [orjson.loads(answer.value)["status"] for answer in answered] == ["ok", "ok"]
    # The database is what failed: the dead letters are the record of those requests.
    assert rows == {(answer.key or b"").decode(): ("ok", "") for answer in answered}


def test_a_response_the_broker_refuses_is_publish_failed_retried_then_dead_lettered(
    exchange: Callable[..., Exchange],
) -> None:
    run = exchange()
    stack = run.stack
    # The broker enforces the topic's max.message.bytes: no response fits.
    tiny = f"{stack.run_id}.tiny-replies"
    create_topic(stack.bootstrap, tiny, **{"max.message.bytes": "128"})
    stack.extra_env["KAFKA_REPLY_TO_ALLOWLIST"] = tiny
    refused = stack.sign([sample("too-big", envelope("too-big", reply_to=tiny), None)])
    outcome = run.send(refused, also=[tiny])
    after = run.send(stack.sign(unsigned(1, "fine")))
    rows = run.rows()
    logs = run.stop()
    assert_given_up(outcome, refused, "publish_failed", "MessageSizeTooLarge")
    assert_retried(logs, "publish_failed")
    assert_went_on(after)
    # Rows are stored before publishing: the refused request's row keeps its answer.
    assert rows == {"too-big": ("ok", ""), "fine-0": ("ok", "")}
