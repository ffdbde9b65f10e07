"""API layer, first of all: who sent this? Verified on the raw bytes, before parsing.

Each record goes to the first configured scheme that recognises its headers
(HMAC: ``auth-key-id``; JWT: ``authorization``), and each scheme verifies its
whole group at once. A record no scheme claims is anonymous when the ``none``
mode is configured, and ``unauthenticated`` otherwise. Records over the size
limit or without a value are left to the decode stage, so that their bytes
are never hashed.

Unauthenticated requests are answered (with the request id they claim, on the
default responses topic) but not dead-lettered: they are not the tenant's
traffic, and keeping forged bytes for 30 days would help no one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from worker.auth.authenticators import Authenticator
from worker.auth.principal import ANONYMOUS
from worker.errors import UnauthenticatedError
from worker.flow.records import Work


class AuthenticateStage:
    """Sets ``work.principal`` or fails the request ``unauthenticated``."""

    name = "authenticate"

    def __init__(
        self,
        authenticators: Sequence[Authenticator],
        *,
        allow_anonymous: bool,
        max_message_bytes: int,
    ) -> None:
        self._authenticators = tuple(authenticators)
        self._allow_anonymous = allow_anonymous
        self._max_bytes = max_message_bytes

    async def __call__(self, batch: Sequence[Work]) -> None:
        groups: dict[int, list[Work]] = defaultdict(list)
        for work in batch:
            if not work.pending:
                continue
            value = work.record.value
            if value is None or len(value) > self._max_bytes:
                continue  # decode answers these without reading them
            for index, authenticator in enumerate(self._authenticators):
                if authenticator.claims(work.record):
                    groups[index].append(work)
                    break
            else:
                if self._allow_anonymous:
                    work.principal = ANONYMOUS
                else:
                    work.fail(
                        UnauthenticatedError(
                            "the request carries no credential (sign it, or send a bearer token)",
                            "missing",
                        )
                    )
        for index, works in groups.items():
            outcomes = await self._authenticators[index].authenticate([w.record for w in works])
            for work, outcome in zip(works, outcomes, strict=True):
                if isinstance(outcome, UnauthenticatedError):
                    work.fail(outcome)
                else:
                    work.principal = outcome
