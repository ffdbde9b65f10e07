"""Requests built field by field, and asking a running worker: publish, then wait for answers."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import orjson

from tests.support.kafka import produce, read_topics
from tests.support.worker import WorkerStack
from worker.loadgen import TENANTS, SampleRequest

_ids = itertools.count(1)


def request(
    operation: str, params: dict[str, Any], *, tenant: str = "acme", key: bytes | None = None
) -> SampleRequest:
    """A valid request with a fresh request id (the Kafka key unless ``key`` is given)."""
    request_id = f"q{next(_ids):06d}"
    body = {
        "request_id": request_id,
        "tenant": tenant,
        "operation": operation,
        "params": params,
        "created_at": "2026-01-01T00:00:00Z",
    }
    return SampleRequest(
        key if key is not None else request_id.encode(),
        orjson.dumps(body),
        request_id,
        "ok",
        None,
        False,
    )


def quote(
    sku: str, quantity: int = 1, currency: str = "EUR", *, tenant: str = "acme"
) -> SampleRequest:
    return request(
        "price.quote", {"sku": sku, "quantity": quantity, "currency": currency}, tenant=tenant
    )


def stats(text: str, *, tenant: str = "acme") -> SampleRequest:
    return request("text.stats", {"text": text}, tenant=tenant)


def again(sample: SampleRequest) -> SampleRequest:
    """The same question under a new request id."""
    body = orjson.loads(sample.value)
    return request(body["operation"], body["params"], tenant=body["tenant"])


def ask(
    stack: WorkerStack, samples: Sequence[SampleRequest], timeout_s: float = 120
) -> list[dict[str, Any]]:
    """Publish ``samples``, signed, to a running worker; their response bodies, in order."""
    topics = stack.topics
    tenants = {str(orjson.loads(sample.value)["tenant"]) for sample in samples}
    produce(stack.bootstrap, topics.requests, stack.sign(list(samples), *TENANTS, *tenants))
    want = {sample.request_id for sample in samples}
    received = read_topics(
        stack.bootstrap,
        [topics.responses],
        until=lambda seen: want <= {r.key.decode() for r in seen if r.key},
        timeout_s=timeout_s,
        alive=stack.alive,
    )
    bodies = {}
    for record in received:
        body = orjson.loads(record.value)
        if body["request_id"] in want:
            bodies[body["request_id"]] = body
    return [bodies[sample.request_id] for sample in samples]


def cache_statuses(bodies: Sequence[dict[str, Any]]) -> list[str]:
    return [body["meta"]["cache"] for body in bodies]
