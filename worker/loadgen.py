"""Sample requests, valid and broken, for the demo, the tests and the benchmark."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson

from worker.auth import signing
from worker.auth.keys import KeyMaterial

TENANTS = ("acme", "globex", "initech")
SKUS = ("SKU-1", "SKU-2", "SKU-3", "SKU-4")


@dataclass(frozen=True, slots=True)
class SampleRequest:
    """A message to publish and the outcome the worker must give it."""

    key: bytes | None
    value: bytes
    request_id: str | None
    status: str
    code: str | None
    dead_letter: bool
    headers: tuple[tuple[str, bytes], ...] = ()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def valid_request(request_id: str, rng: random.Random) -> SampleRequest:
    """A well-formed request for one of the example operations."""
    tenant = rng.choice(TENANTS)
    if rng.random() < 0.7:
        body = {
            "request_id": request_id,
            "tenant": tenant,
            "operation": "price.quote",
            "params": {
                "sku": rng.choice(SKUS),
                "quantity": rng.randint(1, 20),
                "currency": rng.choice(["EUR", "USD", "GBP"]),
            },
            "created_at": _now(),
            "correlation_id": f"corr-{request_id}",
        }
    else:
        body = {
            "request_id": request_id,
            "tenant": tenant,
            "operation": "text.stats",
            "params": {"text": "the quick brown fox jumps over the lazy dog " * rng.randint(1, 5)},
            "created_at": _now(),
        }
    return SampleRequest(request_id.encode(), orjson.dumps(body), request_id, "ok", None, False)


def invalid_requests(prefix: str) -> list[SampleRequest]:
    """One of each kind of broken input, with the code the worker must answer."""
    now = _now()

    def envelope(request_id: str, **overrides: object) -> dict[str, object]:
        body: dict[str, object] = {
            "request_id": request_id,
            "tenant": "acme",
            "operation": "price.quote",
            "params": {"sku": "SKU-1", "quantity": 1},
            "created_at": now,
        }
        body.update(overrides)
        return body

    def sample(
        suffix: str, value: bytes, code: str, *, claimed: bool = True, dlq: bool = True
    ) -> SampleRequest:
        request_id = f"{prefix}-{suffix}"
        return SampleRequest(
            request_id.encode(), value, request_id if claimed else None, "error", code, dlq
        )

    missing = envelope(f"{prefix}-missing")
    del missing["tenant"]
    return [
        sample("badjson", b'{"request_id": "x", oops', "invalid_payload", claimed=False),
        sample("badutf8", b'{"request_id": "\xff\xfe"}', "invalid_payload", claimed=False),
        sample("array", b"[1, 2, 3]", "invalid_payload", claimed=False),
        sample("deep", b"[" * 100 + b"]" * 100, "payload_too_deep", claimed=False),
        sample(
            "wrongtype",
            orjson.dumps(envelope(f"{prefix}-wrongtype", params={"sku": "SKU-1", "quantity": "2"})),
            "validation_failed",
        ),
        sample(
            "unknownop",
            orjson.dumps(envelope(f"{prefix}-unknownop", operation="no.such.op")),
            "unknown_operation",
        ),
        sample("missing", orjson.dumps(missing), "validation_failed"),
        sample(
            "extra",
            orjson.dumps(envelope(f"{prefix}-extra", surprise=True)),
            "validation_failed",
        ),
        sample(
            "notfound",
            orjson.dumps(envelope(f"{prefix}-notfound", params={"sku": "SKU-404", "quantity": 1})),
            "not_found",
            dlq=False,
        ),
    ]


def workload(valid: int, invalid: int, *, seed: int = 7, run_id: str = "r") -> list[SampleRequest]:
    """``valid`` good requests and ``invalid`` broken ones (every kind in turn), shuffled."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    requests = [valid_request(f"{run_id}-{i:07d}", rng) for i in range(valid)]
    kinds = len(invalid_requests("x"))
    for i in range(invalid):
        requests.append(invalid_requests(f"{run_id}-bad{i:05d}")[i % kinds])
    rng.shuffle(requests)
    return requests


def signed_headers(
    body: bytes, request_id: str, key: KeyMaterial, timestamp: int | None = None
) -> tuple[tuple[str, bytes], ...]:
    """The headers that sign ``body`` as ``request_id`` with ``key`` (now, unless told)."""
    return tuple(
        signing.sign(
            body,
            key_id=key.key_id,
            secrets={key.version: key.secret.encode()},
            request_id=request_id,
            timestamp=timestamp,
        )
    )


def sign_samples(
    samples: Sequence[SampleRequest],
    keys: Mapping[str, KeyMaterial],
    *,
    default_tenant: str = "acme",
    timestamp: int | None = None,
) -> list[SampleRequest]:
    """``samples`` signed with the key of the tenant each names (else ``default_tenant``'s).

    The signed request id is the sample's, or its key for samples that claim none.
    """
    signed = []
    for sample in samples:
        try:
            body = orjson.loads(sample.value)
        except orjson.JSONDecodeError:
            body = None
        tenant = body.get("tenant") if isinstance(body, dict) else None
        key = keys[tenant if isinstance(tenant, str) and tenant in keys else default_tenant]
        request_id = sample.request_id or (sample.key or b"unnamed").decode("utf-8", "replace")
        headers = signed_headers(sample.value, request_id, key, timestamp)
        signed.append(replace(sample, headers=headers))
    return signed
