"""Secrets at rest: AES-256-GCM under the master key, bound to where they belong.

The associated data names the key id and the secret version, so a ciphertext
copied onto another key or version does not decrypt. Nothing here logs, and
:class:`SecretBox` keeps its key out of ``repr``.
"""

from __future__ import annotations

import base64
import os
import secrets as _random

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from worker.errors import ConfigurationError

_NONCE_BYTES = 12


def new_master_key() -> str:
    """A fresh master key, as ``SECURITY_MASTER_KEY`` expects it (urlsafe base64, 32 bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def new_secret() -> str:
    """A fresh HMAC secret for a client: 256 random bits, urlsafe text."""
    return _random.token_urlsafe(32)


class SecretBox:
    """Encrypts and decrypts small secrets with AES-GCM."""

    __slots__ = ("_aead",)

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ConfigurationError("the master key must be 32 bytes")
        self._aead = AESGCM(master_key)

    def __repr__(self) -> str:
        return "SecretBox(<master key hidden>)"

    def seal(self, plaintext: str, context: str) -> str:
        """``plaintext`` encrypted, bound to ``context``; urlsafe base64 of nonce + ciphertext."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        """The plaintext of :meth:`seal`'s output; ConfigurationError if the key is wrong."""
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        try:
            plain = self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8")
            )
        except InvalidTag as exc:
            # A wrong master key is an operator problem, not a client's.
            raise ConfigurationError(
                "a stored secret does not decrypt: SECURITY_MASTER_KEY is not the key "
                "the credentials were created with"
            ) from exc
        return plain.decode("utf-8")
