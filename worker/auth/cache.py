"""The in-process credential cache: one store round trip per batch, revocation bounded.

A worker trusts what it looked up for ``ttl_s`` seconds
(``SECURITY_CREDENTIAL_CACHE_TTL_S``, 5 by default). That is the bound on
revocation and on rotation becoming visible: a revoked key is refused by every
worker at most ``ttl_s`` seconds after ``worker keys revoke`` returned. Unknown
key ids are cached too, so forged ids cost one lookup per TTL, not per message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from worker.auth.credentials.base import Credential, CredentialStore
from worker.auth.keys import sealing_context
from worker.auth.secrets import SecretBox


@dataclass(frozen=True, slots=True)
class ResolvedKey:
    """A credential with its secrets decrypted, as verification needs it."""

    key_id: str
    tenant: str
    scopes: frozenset[str]
    active: bool
    # version -> (secret, expires_at epoch seconds or None)
    secrets: dict[int, tuple[bytes, float | None]] = field(repr=False)

    def secret(self, version: int, now: float) -> bytes | None:
        """The secret of ``version`` if it is still valid at ``now``."""
        found = self.secrets.get(version)
        if found is None:
            return None
        secret, expires_at = found
        return secret if expires_at is None or now < expires_at else None


class CredentialCache:
    """Resolves key ids through a TTL cache in front of a :class:`CredentialStore`."""

    def __init__(
        self,
        store: CredentialStore,
        box: SecretBox,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._box = box
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, ResolvedKey | None]] = {}
        self.lookups = 0

    async def resolve(self, key_ids: Sequence[str]) -> dict[str, ResolvedKey | None]:
        """Every key id to its resolved key (None: unknown), with one store call for the misses."""
        now = self._clock()
        out: dict[str, ResolvedKey | None] = {}
        missing = []
        for key_id in dict.fromkeys(key_ids):
            entry = self._entries.get(key_id)
            if entry is not None and entry[0] > now:
                out[key_id] = entry[1]
            else:
                missing.append(key_id)
        if missing:
            self.lookups += 1
            found = await self._store.get_many(missing)
            for key_id in missing:
                credential = found.get(key_id)
                resolved = self._resolve(credential) if credential is not None else None
                out[key_id] = resolved
                if self._ttl_s > 0:
                    self._entries[key_id] = (now + self._ttl_s, resolved)
            if len(self._entries) > 100_000:
                # Forged ids must not grow memory without bound: drop what expired.
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
        return out

    def _resolve(self, credential: Credential) -> ResolvedKey:
        return ResolvedKey(
            key_id=credential.key_id,
            tenant=credential.tenant,
            scopes=credential.scopes,
            active=credential.status == "active",
            secrets={
                v.version: (
                    self._box.open(
                        v.sealed, sealing_context(credential.key_id, v.version)
                    ).encode(),
                    v.expires_at,
                )
                for v in credential.versions
            },
        )
