"""Managing API keys: create, list, rotate, revoke. What ``worker keys`` runs."""

from __future__ import annotations

import secrets as _random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from worker.auth.credentials.base import Credential, CredentialStore, SecretVersion
from worker.auth.secrets import SecretBox, new_secret
from worker.errors import ConfigurationError, NotFoundError


def sealing_context(key_id: str, version: int) -> str:
    """What a sealed secret is bound to (AES-GCM associated data)."""
    return f"worker-credential:{key_id}:v{version}"


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    """A secret as handed to a client once: the only time it is shown in plaintext."""

    credential: Credential
    version: int
    secret: str = field(repr=False)

    def material(self) -> KeyMaterial:
        """What a client signs with."""
        return KeyMaterial(self.credential.key_id, self.version, self.secret)


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """What a client needs to sign: key id, secret version and secret."""

    key_id: str
    version: int
    secret: str

    def __repr__(self) -> str:
        return f"KeyMaterial(key_id={self.key_id!r}, version={self.version}, secret=<hidden>)"


class KeyManager:
    """The life cycle of API keys on a :class:`CredentialStore`."""

    def __init__(
        self, store: CredentialStore, box: SecretBox, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._box = box
        self._clock = clock

    async def create(
        self, tenant: str, scopes: Iterable[str], *, description: str = ""
    ) -> IssuedSecret:
        """A new active key for ``tenant`` with ``scopes``; its secret is returned once."""
        key_id = f"rk_{_random.token_hex(8)}"
        secret = new_secret()
        now = self._clock()
        credential = Credential(
            key_id=key_id,
            tenant=tenant,
            scopes=frozenset(scopes),
            versions=(
                SecretVersion(
                    version=1,
                    sealed=self._box.seal(secret, sealing_context(key_id, 1)),
                    created_at=now,
                ),
            ),
            created_at=now,
            description=description,
        )
        await self._store.put(credential)
        return IssuedSecret(credential, 1, secret)

    async def get(self, key_id: str) -> Credential:
        found = await self._store.get_many([key_id])
        if key_id not in found:
            raise NotFoundError(f"no key {key_id!r}", details={"key_id": key_id})
        return found[key_id]

    async def list(self) -> list[Credential]:
        return await self._store.list()

    async def rotate(self, key_id: str, *, grace_s: float) -> IssuedSecret:
        """Add a secret version; earlier versions stay valid for ``grace_s`` seconds more."""
        credential = await self.get(key_id)
        if credential.status != "active":
            raise ConfigurationError(f"key {key_id!r} is revoked; create a new one")
        now = self._clock()
        version = credential.latest.version + 1
        secret = new_secret()
        kept = tuple(
            v.model_copy(update={"expires_at": min(v.expires_at or now + grace_s, now + grace_s)})
            for v in credential.versions
            if v.valid_at(now)
        )
        fresh = SecretVersion(
            version=version,
            sealed=self._box.seal(secret, sealing_context(key_id, version)),
            created_at=now,
        )
        updated = credential.model_copy(update={"versions": (*kept, fresh)})
        await self._store.put(updated)
        return IssuedSecret(updated, version, secret)

    async def revoke(self, key_id: str) -> Credential:
        """Mark the key revoked; workers refuse it within their credential cache TTL."""
        credential = await self.get(key_id)
        revoked = credential.model_copy(update={"status": "revoked"})
        await self._store.put(revoked)
        return revoked

    def reveal(self, credential: Credential, now: float) -> dict[int, bytes]:
        """The plaintext secrets of ``credential`` still valid at ``now``, by version."""
        return {
            v.version: self._box.open(
                v.sealed, sealing_context(credential.key_id, v.version)
            ).encode()
            for v in credential.versions
            if v.valid_at(now)
        }
