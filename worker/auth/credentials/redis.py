"""Credentials in Redis: one JSON value per key id, read with one MGET per batch."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from redis.exceptions import RedisError

from worker.auth.credentials.base import Credential
from worker.connections.redis import redis_client
from worker.errors import CacheError, SystemFailureError
from worker.settings import RedisSettings


class RedisCredentialStore:
    """The Redis :class:`~worker.auth.credentials.base.CredentialStore`.

    Keys are ``{REDIS_KEY_PREFIX}cred:{key_id}``; values are the credential as
    JSON with its secrets sealed. They never expire: revocation is a status.
    """

    def __init__(self, settings: RedisSettings) -> None:
        self._client = redis_client(settings)
        self._prefix = f"{settings.key_prefix}cred:"

    async def get_many(self, key_ids: Sequence[str]) -> dict[str, Credential]:
        if not key_ids:
            return {}
        try:
            values = await self._client.mget([self._prefix + key_id for key_id in key_ids])
        except (RedisError, OSError) as exc:
            raise CacheError(f"credential store unavailable: {exc}") from exc
        found = {}
        for key_id, value in zip(key_ids, values, strict=True):
            if value is not None:
                found[key_id] = self._parse(key_id, value)
        return found

    @staticmethod
    def _parse(key_id: str, value: bytes | str) -> Credential:
        try:
            return Credential.model_validate_json(value)
        except ValidationError as exc:
            # Not the client's fault, and not fixed by waiting: retried like any server
            # error, then dead-lettered as system_failed so the operator can look.
            raise SystemFailureError(f"stored credential {key_id!r} is corrupt") from exc

    async def put(self, credential: Credential) -> None:
        try:
            await self._client.set(self._prefix + credential.key_id, credential.model_dump_json())
        except (RedisError, OSError) as exc:
            raise CacheError(f"credential store unavailable: {exc}") from exc

    async def list(self) -> list[Credential]:
        try:
            keys = [key async for key in self._client.scan_iter(match=f"{self._prefix}*")]
            values = await self._client.mget(keys) if keys else []
        except (RedisError, OSError) as exc:
            raise CacheError(f"credential store unavailable: {exc}") from exc
        found = [
            self._parse(key.decode()[len(self._prefix) :], value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        ]
        return sorted(found, key=lambda credential: credential.key_id)

    async def close(self) -> None:
        await self._client.aclose()
