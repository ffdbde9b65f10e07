"""API keys for a benchmark run: created once, copied into every arm's key space.

Each worker arm has a Redis prefix of its own (so that one arm's idempotency
records never answer another arm's requests), but the requests are published
and signed once. The keys are therefore created under the run's prefix with the
run's master key, and the same sealed credentials are copied to each arm's
prefix before it starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import SecretStr

from worker.auth import signing
from worker.auth.credentials.redis import RedisCredentialStore
from worker.auth.keys import KeyManager, KeyMaterial
from worker.auth.secrets import SecretBox
from worker.operations.registry import default_registry
from worker.settings import RedisSettings, SecuritySettings


async def create_keys(
    redis: RedisSettings, master_key: str, tenants: Sequence[str]
) -> dict[str, KeyMaterial]:
    """One API key per tenant with every scope, in the credential store under ``redis``."""
    store = RedisCredentialStore(redis)
    try:
        box = SecretBox(SecuritySettings(master_key=SecretStr(master_key)).master_key_bytes())
        manager = KeyManager(store, box)
        scopes = default_registry().scopes()
        return {
            tenant: (await manager.create(tenant, scopes, description="bench")).material()
            for tenant in tenants
        }
    finally:
        await store.close()


async def copy_keys(source: RedisSettings, target: RedisSettings) -> int:
    """Copy every credential under ``source``'s prefix to ``target``'s; returns how many."""
    read, write = RedisCredentialStore(source), RedisCredentialStore(target)
    try:
        credentials = await read.list()
        for credential in credentials:
            await write.put(credential)
        return len(credentials)
    finally:
        await read.close()
        await write.close()


def sign(
    keys: Mapping[str, KeyMaterial], tenant: str, request_id: str, body: bytes
) -> list[tuple[str, bytes]]:
    """The headers that sign ``body`` with ``tenant``'s key."""
    key = keys[tenant]
    return signing.sign(
        body, key_id=key.key_id, secrets={key.version: key.secret.encode()}, request_id=request_id
    )
