"""JWT bearer tokens: signatures checked against keys from a JWKS file, claims pinned.

Only the configured algorithms are accepted (never ``none``, and never an HMAC
algorithm with a public key); ``exp``, ``iss``, ``aud`` and ``sub`` are
required, with issuer and audience compared to the configured ones. The
tenant comes from the tenant claim (``tenant`` by default), the scopes from
``scope`` (space-separated, as in OAuth 2) or ``scp`` (a list).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWKSet

from worker.auth.principal import Principal
from worker.errors import ConfigurationError, UnauthenticatedError
from worker.settings import SecuritySettings

_FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
MAX_TOKEN_BYTES = 8192


def load_jwks(path: Path) -> PyJWKSet:
    """The key set in ``path`` (a JWKS JSON document)."""
    try:
        return PyJWKSet.from_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"SECURITY_JWT_JWKS_FILE {path} is not readable") from exc
    except (jwt.PyJWKSetError, ValueError) as exc:
        raise ConfigurationError(f"SECURITY_JWT_JWKS_FILE {path} is not a usable JWKS") from exc


class JwtVerifier:
    """Verifies bearer tokens; every failure is an :class:`UnauthenticatedError`."""

    def __init__(
        self,
        keys: PyJWKSet,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        tenant_claim: str = "tenant",
        leeway_s: float = 30.0,
    ) -> None:
        unsafe = _FORBIDDEN_ALGORITHMS.intersection(algorithms)
        if unsafe or not algorithms:
            raise ConfigurationError(
                "SECURITY_JWT_ALGORITHMS must name asymmetric algorithms only, "
                f"not {sorted(unsafe)}"
            )
        self._keys = {key.key_id: key for key in keys.keys if key.key_id}
        if not self._keys:
            raise ConfigurationError("the JWKS has no key with a 'kid'")
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._tenant_claim = tenant_claim
        self._leeway_s = leeway_s

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> JwtVerifier:
        if settings.jwt_jwks_file is None or not settings.jwt_issuer or not settings.jwt_audience:
            raise ConfigurationError(
                "jwt mode needs SECURITY_JWT_JWKS_FILE, SECURITY_JWT_ISSUER and "
                "SECURITY_JWT_AUDIENCE"
            )
        return cls(
            load_jwks(settings.jwt_jwks_file),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            algorithms=settings.jwt_algorithm_list,
            tenant_claim=settings.jwt_tenant_claim,
            leeway_s=settings.jwt_leeway_s,
        )

    def verify(self, authorization: str) -> Principal:
        """The principal of an ``Authorization: Bearer <jwt>`` header value."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_BYTES:
            raise UnauthenticatedError("authorization is not 'Bearer <token>'", "malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise UnauthenticatedError(f"bearer token is malformed: {exc}", "malformed") from exc
        key = self._keys.get(str(header.get("kid", "")))
        if key is None:
            raise UnauthenticatedError("bearer token names no known key (kid)", "unknown_key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthenticatedError("bearer token has expired", "expired") from exc
        except jwt.InvalidTokenError as exc:
            raise UnauthenticatedError(f"bearer token is invalid: {exc}", "invalid_token") from exc
        tenant = claims.get(self._tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise UnauthenticatedError(
                f"bearer token has no {self._tenant_claim!r} claim", "invalid_token"
            )
        return Principal("jwt", str(claims["sub"]), tenant, _scopes(claims))


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        return frozenset(s for s in scp if isinstance(s, str))
    return frozenset()
