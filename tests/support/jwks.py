"""A JWT issuer for tests: an RSA key pair made here, its JWKS file, and signed tokens."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://issuer.test"
AUDIENCE = "request-worker"


class Issuer:
    """Signs tokens with a fresh RSA key; :meth:`write_jwks` publishes its public half."""

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write_jwks(self, path: Path) -> Path:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        path.write_bytes(orjson.dumps({"keys": [jwk]}))
        return path

    def token(
        self, *, tenant: str = "acme", scope: str = "price:read text:analyze", **claims: Any
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "client-1",
            "iat": now,
            "exp": now + 300,
            "tenant": tenant,
            "scope": scope,
        }
        body.update(claims)
        return jwt.encode(body, self.private_key, algorithm="RS256", headers={"kid": self.kid})
