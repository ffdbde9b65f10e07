"""In-memory API keys for unit tests: a store, its key manager, a master key and a clock."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from worker.auth.credentials.memory import MemoryCredentialStore
from worker.auth.keys import KeyManager
from worker.auth.secrets import SecretBox, new_master_key
from worker.operations.registry import default_registry
from worker.settings import SecuritySettings


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float | None = None) -> None:
        # Starts at the real time: the pipeline's authenticator reads the real clock.
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


class KeyKit:
    """An in-memory credential store with its key manager, master key and clock."""

    def __init__(self) -> None:
        self.master_key = new_master_key()
        self.security = SecuritySettings(
            auth_modes="hmac",
            master_key=self.master_key,  # type: ignore[arg-type]
            idempotency_ttl_s=3600,
        )
        self.box = SecretBox(self.security.master_key_bytes())
        self.store = MemoryCredentialStore()
        self.clock = Clock()
        self.manager = KeyManager(self.store, self.box, clock=self.clock)

    def create(self, tenant: str = "acme", scopes: frozenset[str] | None = None) -> Any:
        """A new key (every scope unless told); returns the issued secret."""
        wanted = default_registry().scopes() if scopes is None else scopes
        return asyncio.run(self.manager.create(tenant, wanted))
