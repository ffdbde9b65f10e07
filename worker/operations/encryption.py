"""Sensitive values at rest in ClickHouse: AES-256-GCM under a data key, as ``enc:v1:`` text.

The data key is derived from the master key (``SECURITY_MASTER_KEY``) with
HKDF-SHA256 and a label of its own, so one secret is kept by the operator while
the credentials in Redis and the values in ClickHouse are sealed under
different keys: a ciphertext of one kind never opens as the other.

A sealed value is ``enc:v1:`` followed by urlsafe base64 of a random 96-bit
nonce and the AES-GCM ciphertext of the value's JSON. The prefix tells an
analyst the value is encrypted and names the format, so a later format can
sit beside it. ``worker db decrypt`` opens them for an operator with the key.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from worker.errors import ConfigurationError
from worker.settings import SecuritySettings

PREFIX = "enc:v1:"
_NONCE_BYTES = 12
#: HKDF's info: what the derived key is for. Changing it orphans every stored value.
_DATA_KEY_LABEL = b"request-worker/clickhouse-sensitive-fields/v1"
#: Associated data: a value sealed by something else with the same key does not open.
_AAD = b"sensitive-field:v1"


def derive_data_key(master_key: bytes) -> bytes:
    """The 32-byte key sensitive values are sealed with, derived from ``master_key``."""
    if len(master_key) != 32:
        raise ConfigurationError("the master key must be 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DATA_KEY_LABEL).derive(
        master_key
    )


class FieldCipher:
    """Seals JSON values as ``enc:v1:`` strings and opens them again."""

    __slots__ = ("_aead",)

    def __init__(self, master_key: bytes) -> None:
        self._aead = AESGCM(derive_data_key(master_key))

    def __repr__(self) -> str:
        return "FieldCipher(<key hidden>)"

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> FieldCipher | None:
        """A cipher under the configured master key, or None when there is none (jwt, none)."""
        if security.master_key is None and security.master_key_file is None:
            return None
        return cls(security.master_key_bytes())

    def seal(self, value: Any) -> str:
        """``value`` (anything JSON can hold) encrypted, as ``enc:v1:<base64>``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(value), _AAD)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, text: str) -> Any:
        """The value :meth:`seal` sealed. ConfigurationError if it does not open with this key."""
        if not text.startswith(PREFIX):
            raise ValueError(f"not an encrypted value (no {PREFIX!r} prefix)")
        try:
            raw = base64.urlsafe_b64decode(text[len(PREFIX) :].encode("ascii"))
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD)
        except (InvalidTag, ValueError) as exc:
            # A wrong key and a damaged value look the same to AES-GCM, on purpose.
            raise ConfigurationError(
                "an encrypted value does not open: it is damaged, or SECURITY_MASTER_KEY is not "
                "the key it was stored under"
            ) from exc
        return orjson.loads(plain)


def open_all(value: Any, cipher: FieldCipher) -> Any:
    """``value`` with every sealed string inside it opened, however deep.

    Strings that hold a JSON object or array (the ``params`` and ``result``
    columns, as a query prints them) are parsed and opened too, so a whole row
    printed by ``worker db query --format json`` comes back readable.
    """
    if isinstance(value, dict):
        return {key: open_all(item, cipher) for key, item in value.items()}
    if isinstance(value, list):
        return [open_all(item, cipher) for item in value]
    if isinstance(value, str):
        if value.startswith(PREFIX):
            return cipher.open(value)
        if value[:1] in ("{", "["):
            try:
                inner = orjson.loads(value)
            except orjson.JSONDecodeError:
                return value
            return open_all(inner, cipher)
    return value
