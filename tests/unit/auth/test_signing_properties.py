"""HMAC verification, as properties: what verifies, and that any single-bit change does not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.keys import KeyKit
from worker.auth import signing
from worker.auth.authenticators import HmacAuthenticator
from worker.auth.cache import CredentialCache
from worker.auth.principal import Principal
from worker.errors import UnauthenticatedError
from worker.flow.records import InboundRecord

NOW = 1_767_225_600
request_ids = st.from_regex(r"[A-Za-z0-9._:\-]{1,40}", fullmatch=True)
bodies = st.binary(max_size=512)


def verify(kit: KeyKit, body: bytes, headers: list[tuple[str, bytes]]) -> Any:
    cache = CredentialCache(kit.store, kit.box, ttl_s=0)
    authenticator = HmacAuthenticator(cache, clock_skew_s=300, clock=lambda: float(NOW))
    record = InboundRecord("requests", 0, 0, None, None, body, tuple(headers))
    [outcome] = asyncio.run(authenticator.authenticate([record]))
    return outcome


def flip(data: bytes, bit: int) -> bytes:
    index = bit // 8 % len(data)
    return data[:index] + bytes([data[index] ^ (1 << (bit % 8))]) + data[index + 1 :]


def replace_header(
    headers: list[tuple[str, bytes]], name: str, change: Callable[[bytes], bytes]
) -> list[tuple[str, bytes]]:
    return [(k, change(v) if k == name else v) for k, v in headers]


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(body=bodies, request_id=request_ids, skew=st.integers(-300, 300))
def test_a_correctly_signed_request_verifies_as_its_key(
    body: bytes, request_id: str, skew: int
) -> None:
    kit = KeyKit()
    issued = kit.create("acme")
    headers = signing.sign(
        body,
        key_id=issued.credential.key_id,
        secrets={1: issued.secret.encode()},
        request_id=request_id,
        timestamp=NOW + skew,
    )
    outcome = verify(kit, body, headers)
    assert isinstance(outcome, Principal)
    assert (outcome.tenant, outcome.subject) == ("acme", issued.credential.key_id)


@PROPERTY
@given(
    body=bodies,
    request_id=request_ids,
    part=st.sampled_from(["body", "request-id", "auth-timestamp", "auth-signature"]),
    bit=st.integers(0, 10_000),
)
def test_any_single_bit_change_fails(body: bytes, request_id: str, part: str, bit: int) -> None:
    kit = KeyKit()
    issued = kit.create("acme")
    headers = signing.sign(
        body,
        key_id=issued.credential.key_id,
        secrets={1: issued.secret.encode()},
        request_id=request_id,
        timestamp=NOW,
    )
    if part == "body":
        # An empty body has no bit to flip: adding one byte is the change then.
        body = flip(body, bit) if body else b"x"
    else:
        headers = replace_header(headers, part, lambda value: flip(value, bit))
    outcome = verify(kit, body, headers)
    assert isinstance(outcome, UnauthenticatedError), (part, outcome)


@PROPERTY
@given(body=bodies, request_id=request_ids)
def test_a_signature_under_another_secret_fails(body: bytes, request_id: str) -> None:
    kit = KeyKit()
    issued = kit.create("acme")
    other = kit.create("acme")
    headers = signing.sign(
        body,
        key_id=issued.credential.key_id,
        secrets={1: other.secret.encode()},
        request_id=request_id,
        timestamp=NOW,
    )
    outcome = verify(kit, body, headers)
    assert isinstance(outcome, UnauthenticatedError)
    assert outcome.reason == "bad_signature"


@PROPERTY
@given(body=bodies, skew=st.integers(301, 10**6), sign=st.sampled_from([-1, 1]))
def test_a_timestamp_outside_the_window_is_stale(body: bytes, skew: int, sign: int) -> None:
    kit = KeyKit()
    issued = kit.create("acme")
    headers = signing.sign(
        body,
        key_id=issued.credential.key_id,
        secrets={1: issued.secret.encode()},
        request_id="r-1",
        timestamp=NOW + sign * skew,
    )
    outcome = verify(kit, body, headers)
    assert isinstance(outcome, UnauthenticatedError)
    assert outcome.reason == "stale"


@PROPERTY
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                ["auth-key-id", "auth-timestamp", "auth-signature", "request-id", "other"]
            ),
            st.binary(max_size=80),
        ),
        max_size=6,
    ),
    body=bodies,
)
def test_arbitrary_header_bytes_never_raise_and_never_verify(
    headers: list[tuple[str, bytes]], body: bytes
) -> None:
    kit = KeyKit()
    kit.create("acme")
    headers = [("auth-key-id", b"rk_0000000000000000"), *headers]
    outcome = verify(kit, body, headers)
    assert isinstance(outcome, UnauthenticatedError)
