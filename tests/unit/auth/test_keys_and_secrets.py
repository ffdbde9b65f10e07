"""Secrets at rest, key rotation and revocation, and the credential cache's bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.keys import KeyKit
from worker.auth.cache import CredentialCache
from worker.auth.keys import sealing_context
from worker.auth.secrets import SecretBox, new_master_key
from worker.errors import ConfigurationError, NotFoundError
from worker.settings import SecuritySettings

MakeKeys = Callable[[], KeyKit]


def test_a_sealed_secret_opens_only_with_its_key_and_context() -> None:
    box = SecretBox(bytes(32))
    sealed = box.seal("s3cret", "ctx-a")
    assert "s3cret" not in sealed
    assert box.open(sealed, "ctx-a") == "s3cret"
    with pytest.raises(ConfigurationError):
        box.open(sealed, "ctx-b")
    with pytest.raises(ConfigurationError, match="SECURITY_MASTER_KEY"):
        SecretBox(b"\x01" * 32).open(sealed, "ctx-a")


def test_the_store_never_holds_a_plaintext_secret(make_keys: MakeKeys) -> None:
    kit = make_keys()
    issued = kit.create("acme")
    [stored] = asyncio.run(kit.store.list())
    dumped = stored.model_dump_json()
    assert issued.secret not in dumped
    assert issued.secret not in repr(stored)
    assert issued.secret not in repr(issued)
    assert issued.secret not in repr(issued.material())
    assert kit.box.open(stored.versions[0].sealed, sealing_context(stored.key_id, 1)) == (
        issued.secret
    )


def test_the_master_key_is_never_in_reprs_or_messages() -> None:
    key = new_master_key()
    settings = SecuritySettings(master_key=key)  # type: ignore[arg-type]
    assert key not in repr(settings)
    assert key not in str(settings.model_dump())
    assert len(settings.master_key_bytes()) == 32
    assert key not in repr(SecretBox(settings.master_key_bytes()))
    bad = SecuritySettings(master_key="not-base64-of-32-bytes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as raised:
        bad.master_key_bytes()
    assert "not-base64" not in str(raised.value)


def test_the_master_key_can_come_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = new_master_key()
    path.write_text(key + "\n")
    settings = SecuritySettings(master_key_file=path)
    assert settings.master_key_bytes() == SecuritySettings(master_key=key).master_key_bytes()  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="SECURITY_MASTER_KEY"):
        SecuritySettings().master_key_bytes()


def test_no_secret_reaches_the_logs(make_keys: MakeKeys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kit = make_keys()
    issued = kit.create("acme")
    asyncio.run(kit.manager.rotate(issued.credential.key_id, grace_s=60))
    cache = CredentialCache(kit.store, kit.box, ttl_s=5)
    asyncio.run(cache.resolve([issued.credential.key_id]))
    assert issued.secret not in caplog.text
    assert kit.master_key not in caplog.text


def test_rotation_keeps_the_old_secret_valid_for_the_grace_period(make_keys: MakeKeys) -> None:
    kit = make_keys()
    issued = kit.create("acme")
    key_id = issued.credential.key_id
    rotated = asyncio.run(kit.manager.rotate(key_id, grace_s=60))
    assert rotated.version == 2
    assert rotated.secret != issued.secret
    credential = asyncio.run(kit.manager.get(key_id))
    now = kit.clock.now
    assert kit.manager.reveal(credential, now) == {
        1: issued.secret.encode(),
        2: rotated.secret.encode(),
    }
    assert kit.manager.reveal(credential, now + 61) == {2: rotated.secret.encode()}


def test_revoking_an_unknown_key_is_not_found(make_keys: MakeKeys) -> None:
    kit = make_keys()
    with pytest.raises(NotFoundError):
        asyncio.run(kit.manager.revoke("rk_missing"))


class MonotonicClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_revocation_is_seen_once_the_cache_ttl_has_passed(make_keys: MakeKeys) -> None:
    kit = make_keys()
    issued = kit.create("acme")
    key_id = issued.credential.key_id
    clock = MonotonicClock()
    cache = CredentialCache(kit.store, kit.box, ttl_s=5.0, clock=clock)
    [resolved] = asyncio.run(cache.resolve([key_id])).values()
    assert resolved is not None
    assert resolved.active
    asyncio.run(kit.manager.revoke(key_id))
    clock.now += 4.9
    [cached] = asyncio.run(cache.resolve([key_id])).values()
    assert cached is not None
    assert cached.active, "within the TTL the cached credential is still trusted"
    clock.now += 0.2
    [fresh] = asyncio.run(cache.resolve([key_id])).values()
    assert fresh is not None
    assert not fresh.active, "past the TTL the revocation is seen"


def test_one_store_lookup_resolves_every_key_of_a_batch_and_unknown_ids_are_cached(
    make_keys: MakeKeys,
) -> None:
    kit = make_keys()
    ids = [kit.create(tenant).credential.key_id for tenant in ("acme", "globex", "initech")]
    cache = CredentialCache(kit.store, kit.box, ttl_s=5.0, clock=MonotonicClock())
    resolved = asyncio.run(cache.resolve([*ids, "rk_forged", ids[0]]))
    assert kit.store.lookups == 1
    assert resolved["rk_forged"] is None
    assert {r.tenant for r in resolved.values() if r is not None} == {"acme", "globex", "initech"}
    asyncio.run(cache.resolve([*ids, "rk_forged"]))
    assert kit.store.lookups == 1, "hits and known-unknown ids need no lookup"
