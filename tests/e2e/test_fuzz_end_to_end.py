"""Fuzzing the real stack: 10,000 random and mutated messages, each ends exactly once.

The invariant checked, by source position: every record of the requests topic
is answered by exactly one response, and dead-lettered at most once; every
dead letter is a client-layer reject that was also answered. (Only a batch
given up on after a server error is dead-lettered without an answer; nothing
here causes one, so none may appear.)
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import pytest

from tests.support.kafka import produce, read_topics
from tests.support.worker import WorkerStack
from worker.auth.keys import KeyMaterial
from worker.loadgen import SampleRequest, signed_headers, valid_request

pytestmark = pytest.mark.e2e

COUNT = 10_000
CLIENT_LAYER_REJECTS = {
    "payload_too_large",
    "invalid_payload",
    "payload_too_deep",
    "string_too_long",
    "array_too_long",
    "validation_failed",
    "unknown_operation",
}


class Fuzzer:
    """Random and mutated requests, signed (or not) in every way a client could get wrong."""

    def __init__(self, rng: random.Random, keys: dict[str, KeyMaterial]) -> None:
        self.rng = rng
        self.keys = keys
        self.sent: list[SampleRequest] = []
        self.count = 0

    def signed(
        self, body: bytes, request_id: str, tenant: str = "acme", timestamp: int | None = None
    ) -> tuple[tuple[str, bytes], ...]:
        return signed_headers(body, request_id, self.keys[tenant], timestamp)

    def message(self, body: bytes, request_id: str, **kwargs: Any) -> SampleRequest:
        return SampleRequest(
            request_id.encode(),
            body,
            request_id,
            "",
            None,
            False,
            self.signed(body, request_id, **kwargs),
        )

    def random_json(self, depth: int = 0) -> Any:  # noqa: PLR0911 - one return per JSON type
        rng = self.rng
        kind = rng.randrange(8 if depth < 4 else 5)
        if kind == 0:
            return None
        if kind == 1:
            return rng.random() < 0.5
        if kind == 2:
            return rng.randint(-(2**40), 2**40)
        if kind == 3:
            return rng.uniform(-1e6, 1e6)
        if kind == 4:
            return "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(0, 12)))
        if kind == 5:
            return [self.random_json(depth + 1) for _ in range(rng.randint(0, 4))]
        return {
            f"k{rng.randint(0, 9)}": self.random_json(depth + 1) for _ in range(rng.randint(0, 4))
        }

    def next(self) -> SampleRequest:  # noqa: C901, PLR0911, PLR0912 - one branch per kind of fuzz
        rng = self.rng
        self.count += 1
        rid = f"fz-{self.count:06d}"
        kind = rng.randrange(14)
        if kind == 0 or (kind == 1 and not self.sent):
            sample = valid_request(rid, rng)
            sample = replace(sample, headers=self.signed(sample.value, rid, self.tenant(sample)))
            self.sent.append(sample)
            return sample
        if kind == 1:  # a replayed id: the same request again, or the id reused for another
            original = rng.choice(self.sent)
            if rng.random() < 0.5:
                return original
            body = orjson.loads(original.value)
            body["params"] = {"text": f"reused {rid}"}
            body["operation"] = "text.stats"
            raw = orjson.dumps(body)
            return replace(
                original, value=raw, headers=self.signed(raw, body["request_id"], body["tenant"])
            )
        if kind == 2:  # bytes that are not UTF-8 (or not JSON)
            return self.message(bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))), rid)
        if kind == 3:  # deep nesting
            depth = rng.randint(20, 5000)
            return self.message(b"[" * depth + b"]" * depth, rid)
        if kind == 4:  # huge strings, around the string and message limits
            size = rng.choice([100_000, 140_000, 300_000])
            body = orjson.dumps(
                {
                    "request_id": rid,
                    "tenant": "acme",
                    "operation": "text.stats",
                    "params": {"text": "x" * size},
                    "created_at": "2026-01-01T00:00:00Z",
                }
            )
            return self.message(body, rid)
        if kind == 5:  # wrong types in the envelope or the params
            body = orjson.loads(valid_request(rid, rng).value)
            target = body["params"] if rng.random() < 0.5 else body
            target[rng.choice([*target, "extra"])] = self.random_json()
            return self.message(orjson.dumps(body), rid)
        if kind == 6:  # a forged signature
            sample = valid_request(rid, rng)
            headers = [(k, v) for k, v in self.signed(sample.value, rid) if k != "auth-signature"]
            forged = "".join(rng.choice("0123456789abcdef") for _ in range(64))
            return replace(sample, headers=(*headers, ("auth-signature", f"v1={forged}".encode())))
        if kind == 7:  # a stale timestamp
            sample = valid_request(rid, rng)
            stale = int(time.time()) - rng.randint(3600, 10**7)
            return replace(
                sample, headers=self.signed(sample.value, rid, self.tenant(sample), stale)
            )
        if kind == 8:  # another tenant's payload under acme's key
            body = orjson.loads(valid_request(rid, rng).value)
            body["tenant"] = rng.choice(["globex", "initech", "umbrella"])
            return self.message(orjson.dumps(body), rid, tenant="acme")
        if kind == 9:  # bytes changed after signing
            sample = valid_request(rid, rng)
            signed = self.signed(sample.value, rid, self.tenant(sample))
            data = bytearray(sample.value)
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return replace(sample, value=bytes(data), headers=signed)
        if kind == 10:  # bytes mutated, then signed: the client layer sees the damage
            data = bytearray(valid_request(rid, rng).value)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            return self.message(bytes(data), rid)
        if kind == 11:  # random JSON documents
            return self.message(orjson.dumps(self.random_json()), rid)
        if kind == 12:  # garbage authentication headers, or none
            sample = valid_request(rid, rng)
            headers = [
                (
                    rng.choice(
                        [
                            "auth-key-id",
                            "auth-timestamp",
                            "auth-signature",
                            "request-id",
                            "authorization",
                        ]
                    ),
                    bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))),
                )
                for _ in range(rng.randint(0, 4))
            ]
            return replace(sample, headers=tuple(headers))
        # long arrays and an empty value
        if rng.random() < 0.2:
            return self.message(b"", rid)
        body = orjson.loads(valid_request(rid, rng).value)
        body["fields"] = ["total"] * rng.randint(900, 1100)
        return self.message(orjson.dumps(body), rid)

    @staticmethod
    def tenant(sample: SampleRequest) -> str:
        return str(orjson.loads(sample.value)["tenant"])


def test_ten_thousand_fuzzed_messages_each_end_exactly_once(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(WORKER_LOG_LEVEL="warning")
    topics = stack.topics
    keys = {tenant: stack.key_for(tenant) for tenant in ("acme", "globex", "initech")}
    fuzzer = Fuzzer(random.Random(20261127), keys)  # noqa: S311 - test data, not secrets
    messages = [fuzzer.next() for _ in range(COUNT)]
    assert len(messages) == COUNT

    stack.start()
    produce(stack.bootstrap, topics.requests, messages)

    seen = read_topics(
        stack.bootstrap,
        [topics.responses, topics.dead_letters],
        until=lambda records: sum(r.topic == topics.responses for r in records) >= COUNT,
        timeout_s=480,
        settle_s=5,
        alive=stack.alive,
    )
    assert stack.alive(), "the worker kept running"
    assert stack.stop() == 0, stack.logs()

    responses = [orjson.loads(r.value) for r in seen if r.topic == topics.responses]
    answered = Counter(
        (body["meta"]["source"]["partition"], body["meta"]["source"]["offset"])
        for body in responses
    )
    assert len(responses) == COUNT, "one response per message"
    assert len(answered) == COUNT, "every source position answered exactly once"
    assert max(answered.values()) == 1

    dead = [r for r in seen if r.topic == topics.dead_letters]
    dead_positions = Counter(
        (int(r.headers["dlq-source-partition"]), int(r.headers["dlq-source-offset"])) for r in dead
    )
    assert all(count == 1 for count in dead_positions.values()), "dead-lettered at most once"
    assert set(dead_positions) <= set(answered), "dead letters were also answered"
    assert {r.headers["dlq-reason"].decode() for r in dead} <= CLIENT_LAYER_REJECTS

    codes = Counter((body["error"] or {}).get("code", "ok") for body in responses)
    # The fuzz reaches the whole client side of the tree, and still serves real traffic.
    for code in (
        "ok",
        "unauthenticated",
        "forbidden",
        "invalid_payload",
        "payload_too_deep",
        "payload_too_large",
        "string_too_long",
        "array_too_long",
        "validation_failed",
    ):
        assert codes[code] > 0, (code, codes)
    assert sum(body["meta"]["cache"] == "hit" for body in responses) > 0, "replays answered"
