"""Authentication and authorization through the whole pipeline, on in-memory ports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.jwks import AUDIENCE, ISSUER, Issuer
from tests.support.keys import KeyKit
from worker.auth import signing
from worker.auth.credentials.memory import MemoryCredentialStore
from worker.errors import ConfigurationError
from worker.flow.pipeline import Pipeline
from worker.flow.records import InboundRecord
from worker.settings import SecuritySettings

MakeEnvelope = Callable[..., dict[str, Any]]
MakeRecord = Callable[..., InboundRecord]
MakePipeline = Callable[..., Pipeline]
MakeKeys = Callable[[], KeyKit]


def answer(pipeline: Pipeline, record: InboundRecord) -> dict[str, Any]:
    output = asyncio.run(pipeline.run([record]))
    [message] = output.responses
    body: dict[str, Any] = orjson.loads(message.value)
    body["dead_letters"] = len(output.dead_letters)
    return body


def signed(
    make_record: MakeRecord,
    payload: dict[str, Any] | bytes,
    issued: Any,
    *,
    request_id: str | None = None,
    timestamp: int | None = None,
) -> InboundRecord:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    rid = request_id or (payload["request_id"] if isinstance(payload, dict) else "r-raw")
    headers = signing.sign(
        raw,
        key_id=issued.credential.key_id,
        secrets={issued.version: issued.secret.encode()},
        request_id=rid,
        timestamp=timestamp,
    )
    return make_record(raw, headers=tuple(headers), key=rid.encode())


@pytest.fixture
def kit(make_keys: MakeKeys) -> KeyKit:
    return make_keys()


@pytest.fixture
def pipeline(kit: KeyKit, make_pipeline: MakePipeline) -> Pipeline:
    return make_pipeline(security=kit.security, credentials=kit.store)


def test_a_signed_request_is_served(
    kit: KeyKit, pipeline: Pipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    body = answer(pipeline, signed(make_record, make_envelope(), kit.create("acme")))
    assert body["status"] == "ok"


def test_an_unsigned_request_is_unauthenticated_and_not_dead_lettered(
    pipeline: Pipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    body = answer(pipeline, make_record(make_envelope(request_id="u-1")))
    assert body["error"]["code"] == "unauthenticated"
    assert body["error"]["details"]["reason"] == "missing"
    assert body["dead_letters"] == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("stale", "stale"),
        ("revoked", "revoked"),
        ("unknown", "unknown_key"),
        ("request_id", "request_id_mismatch"),
        ("rotated_out", "bad_signature"),
    ],
)
def test_a_request_whose_credential_does_not_hold_is_unauthenticated(  # noqa: PLR0917 - fixtures
    kit: KeyKit,
    pipeline: Pipeline,
    make_envelope: MakeEnvelope,
    make_record: MakeRecord,
    change: str,
    reason: str,
) -> None:
    issued = kit.create("acme")
    payload = make_envelope()
    if change == "stale":
        record = signed(make_record, payload, issued, timestamp=int(time.time()) - 3600)
    elif change == "revoked":
        asyncio.run(kit.manager.revoke(issued.credential.key_id))
        record = signed(make_record, payload, issued)
    elif change == "unknown":
        kit.store._by_id.clear()
        record = signed(make_record, payload, issued)
    elif change == "request_id":
        record = signed(make_record, payload, issued, request_id="someone-else")
    else:
        asyncio.run(kit.manager.rotate(issued.credential.key_id, grace_s=0))
        record = signed(make_record, payload, issued)
    body = answer(pipeline, record)
    assert body["error"]["code"] == "unauthenticated"
    assert body["error"]["details"]["reason"] == reason


def test_a_payload_naming_another_tenant_is_forbidden(
    kit: KeyKit, pipeline: Pipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    body = answer(pipeline, signed(make_record, make_envelope(tenant="globex"), kit.create("acme")))
    assert body["error"]["code"] == "forbidden"
    assert body["error"]["details"]["reason"] == "tenant_mismatch"


def test_a_credential_without_the_operations_scope_is_forbidden(
    kit: KeyKit, pipeline: Pipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    issued = kit.create("acme", scopes=frozenset({"text:analyze"}))
    body = answer(pipeline, signed(make_record, make_envelope(), issued))
    assert body["error"]["code"] == "forbidden"
    assert body["error"]["details"]["missing"] == ["price:read"]


def test_during_a_rotation_old_and_new_secrets_both_verify(
    kit: KeyKit, pipeline: Pipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    issued = kit.create("acme")
    rotated = asyncio.run(kit.manager.rotate(issued.credential.key_id, grace_s=3600))
    for secret in (issued, rotated):
        assert answer(pipeline, signed(make_record, make_envelope(), secret))["status"] == "ok"


def test_one_credential_lookup_serves_a_whole_batch(
    kit: KeyKit, pipeline: Pipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    keys = {tenant: kit.create(tenant) for tenant in ("acme", "globex")}
    records = [
        signed(make_record, make_envelope(tenant=tenant), keys[tenant])
        for tenant in ["acme", "globex"] * 10
    ]
    before = kit.store.lookups
    output = asyncio.run(pipeline.run(records))
    assert kit.store.lookups == before + 1
    assert {orjson.loads(m.value)["status"] for m in output.responses} == {"ok"}


def test_an_oversized_message_is_answered_payload_too_large_without_being_hashed(
    kit: KeyKit, make_pipeline: MakePipeline, make_record: MakeRecord
) -> None:
    pipeline = make_pipeline(security=kit.security, credentials=kit.store, max_message_bytes=64)
    record = signed(make_record, b"{" + b" " * 100 + b"}", kit.create("acme"))
    before = kit.store.lookups
    body = answer(pipeline, record)
    assert body["error"]["code"] == "payload_too_large"
    assert kit.store.lookups == before


def test_bearer_tokens_authenticate_in_jwt_mode(
    make_pipeline: MakePipeline,
    make_envelope: MakeEnvelope,
    make_record: MakeRecord,
    tmp_path: Path,
) -> None:
    issuer = Issuer()
    security = SecuritySettings(
        auth_modes="jwt",
        jwt_jwks_file=issuer.write_jwks(tmp_path / "jwks.json"),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_algorithms="RS256",
        idempotency_ttl_s=60,
    )
    pipeline = make_pipeline(security=security)

    def with_token(token: str, tenant: str = "acme") -> InboundRecord:
        return make_record(
            make_envelope(tenant=tenant), headers=(("authorization", f"Bearer {token}".encode()),)
        )

    assert answer(pipeline, with_token(issuer.token()))["status"] == "ok"
    other = answer(pipeline, with_token(issuer.token(tenant="globex")))
    assert other["error"]["code"] == "forbidden"
    forged = answer(pipeline, with_token(Issuer().token()))
    assert forged["error"]["code"] == "unauthenticated"


def test_hmac_mode_without_a_master_key_refuses_to_build(make_pipeline: MakePipeline) -> None:
    with pytest.raises(ConfigurationError, match="SECURITY_MASTER_KEY"):
        make_pipeline(
            security=SecuritySettings(auth_modes="hmac", master_key=None, master_key_file=None),
            credentials=MemoryCredentialStore(),
        )
    with pytest.raises(ConfigurationError, match="unknown mode"):
        make_pipeline(security=SecuritySettings(auth_modes="hmac,magic"))


def test_authentication_headers_without_a_value_are_malformed(
    kit: KeyKit, pipeline: Pipeline, make_envelope: MakeEnvelope, make_record: MakeRecord
) -> None:
    good = signed(make_record, make_envelope(request_id="nv-1"), kit.create("acme"))
    headers = tuple(
        (name, None if name == signing.SIGNATURE_HEADER else value) for name, value in good.headers
    )
    body = answer(pipeline, make_record(good.value, headers=headers, key=good.key))
    assert body["error"]["code"] == "unauthenticated"
    assert body["error"]["details"]["reason"] == "malformed"
    assert body["request_id"] == "nv-1"
