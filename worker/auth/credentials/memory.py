"""Credentials in a dict: the unit tests' and the broker-free harness's store."""

from __future__ import annotations

from collections.abc import Sequence

from worker.auth.credentials.base import Credential


class MemoryCredentialStore:
    """The in-memory :class:`~worker.auth.credentials.base.CredentialStore`."""

    def __init__(self) -> None:
        self._by_id: dict[str, Credential] = {}
        self.lookups = 0

    async def get_many(self, key_ids: Sequence[str]) -> dict[str, Credential]:
        self.lookups += 1
        return {key_id: self._by_id[key_id] for key_id in key_ids if key_id in self._by_id}

    async def put(self, credential: Credential) -> None:
        self._by_id[credential.key_id] = credential

    async def list(self) -> list[Credential]:
        return [self._by_id[key_id] for key_id in sorted(self._by_id)]

    async def close(self) -> None:
        return None
