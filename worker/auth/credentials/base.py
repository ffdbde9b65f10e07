"""The credential store port and what it stores.

A credential is an API key: a key id that clients send in clear, the tenant
and scopes it grants, its status, and one or more secret versions (rotation
adds one and gives the previous one an expiry). Secrets are stored sealed
with :class:`~worker.auth.secrets.SecretBox`, never in plaintext.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

KEY_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

Status = Literal["active", "revoked"]


class SecretVersion(BaseModel):
    """One version of a key's secret, sealed. ``expires_at`` (epoch s) is set by rotation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[int, Field(ge=1)]
    sealed: str = Field(repr=False)
    created_at: float
    expires_at: float | None = None

    def valid_at(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


class Credential(BaseModel):
    """An API key as stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: Annotated[str, Field(pattern=KEY_ID.pattern)]
    tenant: Annotated[str, Field(min_length=1, max_length=128)]
    scopes: frozenset[str]
    status: Status = "active"
    versions: tuple[SecretVersion, ...]
    created_at: float
    description: str = ""

    @property
    def latest(self) -> SecretVersion:
        return max(self.versions, key=lambda v: v.version)


class CredentialStore(Protocol):
    """Credentials by key id. Unreachable storage raises :class:`~worker.errors.CacheError`."""

    async def get_many(self, key_ids: Sequence[str]) -> dict[str, Credential]:
        """The stored credentials among ``key_ids``, in one round trip; unknown ids are absent."""

    async def put(self, credential: Credential) -> None:
        """Create or replace ``credential``."""

    async def list(self) -> list[Credential]:
        """Every stored credential, ordered by key id."""

    async def close(self) -> None:
        """Release connections."""
