"""The pluggable authentication schemes: each claims the records it recognises.

An :class:`Authenticator` says which records carry its kind of credential
(:meth:`claims`) and verifies a whole group of them in one call, so that the
HMAC scheme looks up every key id of a batch in one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from worker.auth import signing
from worker.auth.bearer import JwtVerifier
from worker.auth.cache import CredentialCache
from worker.auth.credentials.base import KEY_ID
from worker.auth.principal import Principal
from worker.errors import UnauthenticatedError
from worker.flow.records import InboundRecord

Outcome = Principal | UnauthenticatedError


def header(record: InboundRecord, name: str) -> str | None:
    """The first header called ``name`` as text; '' if it has no value or is not UTF-8.

    None if the record has no such header.
    """
    for key, value in record.headers:
        if key == name:
            return _text(value)
    return None


def header_map(record: InboundRecord) -> dict[str, bytes | None]:
    """The record's headers by name, the first of each name winning (one pass, in C)."""
    return dict(reversed(record.headers))


def header_text(headers: dict[str, bytes | None], name: str) -> str | None:
    """:func:`header` over a :func:`header_map`, for reading several headers of a record."""
    return _text(headers[name]) if name in headers else None


def _text(value: bytes | None) -> str:
    if value is None:
        return ""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return ""


class Authenticator(Protocol):
    """One way of proving who sent a request."""

    scheme: str

    def claims(self, record: InboundRecord) -> bool:
        """Whether ``record`` carries this scheme's credential."""

    async def authenticate(self, records: Sequence[InboundRecord]) -> list[Outcome]:
        """A principal or the reason for refusal, for each record, in order."""


class HmacAuthenticator:
    """HMAC-SHA256 signatures (see :mod:`worker.auth.signing`) against the credential store."""

    scheme = "hmac"

    def __init__(
        self,
        credentials: CredentialCache,
        *,
        clock_skew_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._clock_skew_s = clock_skew_s
        self._clock = clock

    def claims(self, record: InboundRecord) -> bool:
        return header(record, signing.KEY_ID_HEADER) is not None

    async def authenticate(self, records: Sequence[InboundRecord]) -> list[Outcome]:
        now = self._clock()
        parsed: list[tuple[str, str, str, dict[int, bytes]] | UnauthenticatedError] = [
            self._parse(record, now) for record in records
        ]
        key_ids = [p[0] for p in parsed if not isinstance(p, UnauthenticatedError)]
        resolved = await self._credentials.resolve(key_ids) if key_ids else {}
        outcomes: list[Outcome] = []
        for record, item in zip(records, parsed, strict=True):
            if isinstance(item, UnauthenticatedError):
                outcomes.append(item)
                continue
            key_id, stamp, request_id, signatures = item
            key = resolved.get(key_id)
            if key is None:
                outcomes.append(UnauthenticatedError("unknown key id", "unknown_key"))
            elif not key.active:
                outcomes.append(UnauthenticatedError("the key is revoked", "revoked"))
            elif self._verified(key.secret, now, signatures, key_id, stamp, request_id, record):
                outcomes.append(Principal("hmac", key_id, key.tenant, key.scopes))
            else:
                outcomes.append(
                    UnauthenticatedError(
                        "the signature does not match any valid secret version", "bad_signature"
                    )
                )
        return outcomes

    def _parse(
        self, record: InboundRecord, now: float
    ) -> tuple[str, str, str, dict[int, bytes]] | UnauthenticatedError:
        headers = header_map(record)
        key_id = header_text(headers, signing.KEY_ID_HEADER) or ""
        stamp = header_text(headers, signing.TIMESTAMP_HEADER)
        request_id = header_text(headers, signing.REQUEST_ID_HEADER)
        raw_signatures = header_text(headers, signing.SIGNATURE_HEADER)
        if stamp is None or request_id is None or raw_signatures is None:
            return UnauthenticatedError(
                f"a signed request needs the {signing.TIMESTAMP_HEADER}, "
                f"{signing.REQUEST_ID_HEADER} and {signing.SIGNATURE_HEADER} headers",
                "missing",
            )
        seconds = signing.parse_timestamp(stamp)
        signatures = signing.parse_signatures(raw_signatures)
        if not KEY_ID.fullmatch(key_id) or seconds is None or signatures is None:
            return UnauthenticatedError("malformed authentication headers", "malformed")
        if not request_id or len(request_id) > 128:
            return UnauthenticatedError("malformed request-id header", "malformed")
        if abs(now - seconds) > self._clock_skew_s:
            return UnauthenticatedError(
                f"the signed timestamp is over {self._clock_skew_s:g}s from the worker's clock",
                "stale",
            )
        return key_id, stamp, request_id, signatures

    @staticmethod
    def _verified(  # noqa: PLR0917 - a private helper over the parts of one request
        secret_of: Callable[[int, float], bytes | None],
        now: float,
        signatures: dict[int, bytes],
        key_id: str,
        stamp: str,
        request_id: str,
        record: InboundRecord,
    ) -> bool:
        body = record.value or b""
        ok = False
        for version, expected in signatures.items():
            secret = secret_of(version, now)
            # Every listed version is checked, so timing does not tell which one matched.
            if secret is not None and signing.verify(
                expected, key_id, stamp, request_id, body, secret
            ):
                ok = True
        return ok


class JwtAuthenticator:
    """Bearer tokens in an ``authorization`` header (see :mod:`worker.auth.bearer`)."""

    scheme = "jwt"

    def __init__(self, verifier: JwtVerifier) -> None:
        self._verifier = verifier

    def claims(self, record: InboundRecord) -> bool:
        return header(record, signing.AUTHORIZATION_HEADER) is not None

    async def authenticate(self, records: Sequence[InboundRecord]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for record in records:
            try:
                outcomes.append(
                    self._verifier.verify(header(record, signing.AUTHORIZATION_HEADER) or "")
                )
            except UnauthenticatedError as exc:
                outcomes.append(exc)
        return outcomes
