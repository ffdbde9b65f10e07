"""HMAC-SHA256 request signatures, verified on the raw bytes before anything parses them.

A signed request carries four Kafka headers::

    auth-key-id:     rk_0123456789abcdef
    auth-timestamp:  1767225600                  (Unix seconds, when it was signed)
    request-id:      r-1                         (must equal the envelope's request_id)
    auth-signature:  v2=<64 hex>[,v1=<64 hex>]   (one per secret version the client holds)

The signature is HMAC-SHA256, under the secret of that version, of::

    key id \\n timestamp \\n request id \\n raw message bytes

Listing several versions lets a client sign with the old and the new secret
while a rotation's grace period runs. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping

KEY_ID_HEADER = "auth-key-id"
TIMESTAMP_HEADER = "auth-timestamp"
SIGNATURE_HEADER = "auth-signature"
REQUEST_ID_HEADER = "request-id"
AUTHORIZATION_HEADER = "authorization"

_SIGNATURE_PART = re.compile(r"^v([1-9][0-9]{0,5})=([0-9a-f]{64})$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
MAX_SIGNATURES = 4


def string_to_sign(key_id: str, timestamp: str, request_id: str, body: bytes) -> bytes:
    """The exact bytes the signature covers."""
    return b"\n".join((key_id.encode(), timestamp.encode(), request_id.encode(), body))


def signature(secret: bytes, key_id: str, timestamp: str, request_id: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of :func:`string_to_sign`."""
    message = string_to_sign(key_id, timestamp, request_id, body)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(
    body: bytes,
    *,
    key_id: str,
    secrets: Mapping[int, bytes],
    request_id: str,
    timestamp: int | None = None,
) -> list[tuple[str, bytes]]:
    """The Kafka headers that sign ``body``, with one signature per secret version given."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signatures = ",".join(
        f"v{version}={signature(secret, key_id, stamp, request_id, body)}"
        for version, secret in sorted(secrets.items(), reverse=True)
    )
    return [
        (KEY_ID_HEADER, key_id.encode()),
        (TIMESTAMP_HEADER, stamp.encode()),
        (REQUEST_ID_HEADER, request_id.encode()),
        (SIGNATURE_HEADER, signatures.encode()),
    ]


def parse_signatures(value: str) -> dict[int, bytes] | None:
    """``v<version>=<hex>`` parts by version, or None if the header is malformed."""
    parts = value.split(",")
    if not 1 <= len(parts) <= MAX_SIGNATURES:
        return None
    found: dict[int, bytes] = {}
    for part in parts:
        match = _SIGNATURE_PART.fullmatch(part.strip())
        if match is None:
            return None
        found[int(match[1])] = match[2].encode()
    return found


def parse_timestamp(value: str) -> int | None:
    """A Unix-seconds timestamp header, or None if malformed."""
    return int(value) if _TIMESTAMP.fullmatch(value) else None


def verify(  # noqa: PLR0917 - the parts of the string to sign, in its order
    expected: bytes, key_id: str, timestamp: str, request_id: str, body: bytes, secret: bytes
) -> bool:
    """Whether ``expected`` (hex) is the signature of the request under ``secret``."""
    actual = signature(secret, key_id, timestamp, request_id, body).encode()
    return hmac.compare_digest(actual, expected)
