"""The messages a scenario sends, each with the outcome the worker owes it.

Valid requests come from :mod:`worker.loadgen`. Poison covers every way a
producer can get a message wrong, on both sides of each limit. The suite runs
its workers with small limits (:data:`LIMITS`) so that a message *at* a limit
stays small; each kind states what the worker must answer and, for the client
layer's rejects, the dead-letter reason:

======================  =====================  ===================
kind                    answer                 dead letter
======================  =====================  ===================
invalid_json            invalid_payload        invalid_payload
invalid_utf8            invalid_payload        invalid_payload
not_an_object           invalid_payload        invalid_payload
empty                   invalid_payload        invalid_payload
size_at_limit           ok                     -
size_over_limit         payload_too_large      payload_too_large
string_at_limit         ok                     -
string_over_limit       string_too_long        string_too_long
array_at_limit          validation_failed      validation_failed  (``fields`` allows 64)
array_over_limit        array_too_long         array_too_long
depth_at_limit          invalid_payload        invalid_payload    (an array, not an object)
depth_over_limit        payload_too_deep       payload_too_deep
wrong_type              validation_failed      validation_failed
unknown_operation       unknown_operation      unknown_operation
forged_signature        unauthenticated        -
stale_signature         unauthenticated        -
other_tenant            forbidden              -
replayed_id             the original's answer  -                  (the same message again)
reused_id               conflict               -                  (the same id, other params)
======================  =====================  ===================
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson

from worker.auth.keys import KeyMaterial
from worker.loadgen import (
    TENANTS,
    SampleRequest,
    invalid_requests,
    signed_headers,
    valid_request,
)

#: The worker's limits in every scenario (``LIMITS_*``), small enough that a message
#: at each limit is a few kilobytes.
MAX_MESSAGE_BYTES = 8192
MAX_STRING_LENGTH = 4096
MAX_ARRAY_LENGTH = 100
MAX_JSON_DEPTH = 32
LIMITS = {
    "LIMITS_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
    "LIMITS_MAX_STRING_LENGTH": str(MAX_STRING_LENGTH),
    "LIMITS_MAX_ARRAY_LENGTH": str(MAX_ARRAY_LENGTH),
    "LIMITS_MAX_JSON_DEPTH": str(MAX_JSON_DEPTH),
}


@dataclass(frozen=True, slots=True)
class Message:
    """One message to publish and what the worker must do with it."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    #: The error code of the answer, or ``ok``.
    code: str
    #: The dead-letter reason the message must get, or None for none.
    dead_letter: str | None
    #: The poison kind, or None for a valid request.
    poison: str | None = None

    def identity(self) -> tuple[str, str] | None:
        """(tenant, request_id) as the body claims them: the key of its ``requests`` row.

        Messages sent under the same identity (a replay, a reused id) share one row
        once a background merge of the ReplacingMergeTree collapsed them.
        """
        try:
            body = orjson.loads(self.value)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict):
            return None
        tenant, request_id = body.get("tenant"), body.get("request_id")
        if isinstance(tenant, str) and isinstance(request_id, str):
            return tenant, request_id
        return None


class Signer:
    """Signs bodies with the API keys of the sample tenants."""

    def __init__(self, keys: Mapping[str, KeyMaterial]) -> None:
        self.keys = keys

    def __call__(
        self, body: bytes, request_id: str, tenant: str = "acme", timestamp: int | None = None
    ) -> tuple[tuple[str, bytes], ...]:
        return signed_headers(body, request_id, self.keys[tenant], timestamp)


def _envelope(request_id: str, operation: str, params: dict[str, object], **extra: object) -> bytes:
    body: dict[str, object] = {
        "request_id": request_id,
        "tenant": "acme",
        "operation": operation,
        "params": params,
        "created_at": datetime.now(UTC).isoformat(),
        **extra,
    }
    return orjson.dumps(body)


def _text_of_size(request_id: str, size: int) -> bytes:
    """A valid ``text.stats`` request of exactly ``size`` bytes, its text under the string limit.

    Two-byte characters carry most of the size, so the text stays below
    :data:`MAX_STRING_LENGTH` characters while the message reaches the byte limit.
    """
    base = len(_envelope(request_id, "text.stats", {"text": ""}))
    room = size - base
    text = "é" * (room // 2) + "e" * (room % 2)
    body = _envelope(request_id, "text.stats", {"text": text})
    if len(body) != size:  # created_at's length varies with the clock's microseconds
        return _text_of_size(request_id, size)
    return body


class PoisonFactory:
    """One message of each poison kind in turn, signed (or mis-signed) as the kind says."""

    def __init__(self, sign: Signer, rng: random.Random) -> None:
        self.sign = sign
        self.rng = rng
        self.originals: list[Message] = []
        self.kinds: list[tuple[str, Callable[[str], Message]]] = [
            (
                "invalid_json",
                lambda r: self._raw(r, b'{"request_id": "x", oops', "invalid_payload"),
            ),
            (
                "invalid_utf8",
                lambda r: self._raw(r, b'{"request_id": "\xff\xfe"}', "invalid_payload"),
            ),
            ("not_an_object", lambda r: self._raw(r, b"[1, 2, 3]", "invalid_payload")),
            ("empty", lambda r: self._raw(r, b"", "invalid_payload")),
            ("size_at_limit", lambda r: self._ok(r, _text_of_size(r, MAX_MESSAGE_BYTES))),
            (
                "size_over_limit",
                lambda r: self._raw(
                    r, _text_of_size(r, MAX_MESSAGE_BYTES + 1), "payload_too_large"
                ),
            ),
            (
                "string_at_limit",
                lambda r: self._ok(
                    r, _envelope(r, "text.stats", {"text": "s" * MAX_STRING_LENGTH})
                ),
            ),
            (
                "string_over_limit",
                lambda r: self._raw(
                    r,
                    _envelope(r, "text.stats", {"text": "s" * (MAX_STRING_LENGTH + 1)}),
                    "string_too_long",
                ),
            ),
            ("array_at_limit", lambda r: self._fields(r, MAX_ARRAY_LENGTH, "validation_failed")),
            ("array_over_limit", lambda r: self._fields(r, MAX_ARRAY_LENGTH + 1, "array_too_long")),
            (
                "depth_at_limit",
                lambda r: self._raw(
                    r, b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, "invalid_payload"
                ),
            ),
            (
                "depth_over_limit",
                lambda r: self._raw(
                    r, b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "payload_too_deep"
                ),
            ),
            (
                "wrong_type",
                lambda r: self._raw(
                    r,
                    _envelope(r, "price.quote", {"sku": "SKU-1", "quantity": "2"}),
                    "validation_failed",
                ),
            ),
            (
                "unknown_operation",
                lambda r: self._raw(r, _envelope(r, "no.such.op", {}), "unknown_operation"),
            ),
            ("forged_signature", self._forged),
            ("stale_signature", self._stale),
            ("other_tenant", self._other_tenant),
            ("replayed_id", self._replayed),
            ("reused_id", self._reused),
        ]

    def _raw(self, request_id: str, body: bytes, code: str) -> Message:
        """Signed correctly, so that it reaches the client layer, which must reject it."""
        return Message(request_id.encode(), body, self.sign(body, request_id), code, code)

    def _ok(self, request_id: str, body: bytes) -> Message:
        message = Message(request_id.encode(), body, self.sign(body, request_id), "ok", None)
        self.originals.append(message)
        return message

    def _fields(self, request_id: str, count: int, code: str) -> Message:
        params = {"sku": "SKU-1", "quantity": 1, "currency": "EUR"}
        return self._raw(
            request_id, _envelope(request_id, "price.quote", params, fields=["total"] * count), code
        )

    def _valid(self, request_id: str) -> tuple[bytes, str]:
        sample = valid_request(request_id, self.rng)
        return sample.value, str(orjson.loads(sample.value)["tenant"])

    def _forged(self, request_id: str) -> Message:
        body, tenant = self._valid(request_id)
        headers = [(k, v) for k, v in self.sign(body, request_id, tenant) if k != "auth-signature"]
        forged = f"v1={self.rng.randbytes(32).hex()}".encode()
        return Message(
            request_id.encode(),
            body,
            (*headers, ("auth-signature", forged)),
            "unauthenticated",
            None,
        )

    def _stale(self, request_id: str) -> Message:
        body, tenant = self._valid(request_id)
        stale = int(time.time()) - 3600
        return Message(
            request_id.encode(),
            body,
            self.sign(body, request_id, tenant, stale),
            "unauthenticated",
            None,
        )

    def _other_tenant(self, request_id: str) -> Message:
        body = orjson.loads(self._valid(request_id)[0])
        body["tenant"] = "globex"
        raw = orjson.dumps(body)
        return Message(
            request_id.encode(), raw, self.sign(raw, request_id, "acme"), "forbidden", None
        )

    def _original(self, request_id: str) -> Message:
        """An earlier valid message of this run (a fresh one if there is none yet)."""
        if not self.originals:
            body, tenant = self._valid(request_id)
            self.originals.append(
                Message(request_id.encode(), body, self.sign(body, request_id, tenant), "ok", None)
            )
        return self.rng.choice(self.originals)

    def _replayed(self, request_id: str) -> Message:
        original = self._original(request_id)
        body = orjson.loads(original.value)
        # Signed again: a client retrying, not a stale copy.
        headers = self.sign(original.value, body["request_id"], body["tenant"])
        return replace(original, headers=headers)

    def _reused(self, request_id: str) -> Message:
        original = self._original(request_id)
        body = orjson.loads(original.value)
        body["operation"] = "text.stats"
        body["params"] = {"text": f"another question under {body['request_id']}"}
        body.pop("fields", None)
        raw = orjson.dumps(body)
        headers = self.sign(raw, body["request_id"], body["tenant"])
        return Message(original.key, raw, headers, "conflict", None)

    def make(self, index: int, run_id: str) -> Message:
        kind, build = self.kinds[index % len(self.kinds)]
        return replace(build(f"{run_id}-p{index:06d}"), poison=kind)


def valid_message(sign: Signer, request_id: str, rng: random.Random) -> Message:
    sample = valid_request(request_id, rng)
    tenant = str(orjson.loads(sample.value)["tenant"])
    return Message(
        sample.key or request_id.encode(),
        sample.value,
        sign(sample.value, request_id, tenant),
        "ok",
        None,
    )


def _loadgen_message(sign: Signer, sample: SampleRequest) -> Message:
    request_id = sample.request_id or (sample.key or b"").decode()
    headers = sign(sample.value, request_id)
    return Message(
        sample.key or request_id.encode(),
        sample.value,
        headers,
        sample.code or "ok",
        sample.code if sample.dead_letter else None,
        sample.code,
    )


def messages(
    sign: Signer, count: int, *, poison_every: int, full_poison: bool, run_id: str, seed: int = 7
) -> list[Message]:
    """``count`` messages: valid requests with one poison message every ``poison_every``.

    ``full_poison`` cycles through every kind of :class:`PoisonFactory`; otherwise
    the broken requests of :func:`worker.loadgen.invalid_requests` (the common
    client mistakes) are mixed in.
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    factory = PoisonFactory(sign, rng)
    broken = 0
    out: list[Message] = []
    for i in range(count):
        if poison_every and i % poison_every == poison_every - 1:
            if full_poison:
                out.append(factory.make(broken, run_id))
            else:
                kinds = invalid_requests(f"{run_id}-bad{broken:05d}")
                out.append(_loadgen_message(sign, kinds[broken % len(kinds)]))
            broken += 1
        else:
            message = valid_message(sign, f"{run_id}-{i:07d}", rng)
            factory.originals.append(message)
            out.append(message)
    return out


__all__ = ["LIMITS", "TENANTS", "Message", "Signer", "messages"]
