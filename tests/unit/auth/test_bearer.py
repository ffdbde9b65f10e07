"""JWT bearer tokens: pinned algorithms, issuer, audience, expiry, keys from a JWKS file."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from tests.support.jwks import AUDIENCE, ISSUER, Issuer
from worker.auth.bearer import JwtVerifier, load_jwks
from worker.errors import ConfigurationError, UnauthenticatedError
from worker.settings import SecuritySettings


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def verifier(issuer: Issuer, tmp_path: Path) -> JwtVerifier:
    settings = SecuritySettings(
        auth_modes="jwt",
        jwt_jwks_file=issuer.write_jwks(tmp_path / "jwks.json"),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_algorithms="RS256",
    )
    return JwtVerifier.from_settings(settings)


def test_a_valid_token_is_its_tenant_scopes_and_subject(
    issuer: Issuer, verifier: JwtVerifier
) -> None:
    principal = verifier.verify(f"Bearer {issuer.token(tenant='globex', scope='price:read')}")
    assert (principal.method, principal.tenant, principal.subject) == ("jwt", "globex", "client-1")
    assert principal.scopes == frozenset({"price:read"})


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "someone-else"}, "invalid_token"),
        ({"iss": "https://evil.test"}, "invalid_token"),
        ({"tenant": None}, "invalid_token"),
    ],
    ids=["expired", "audience", "issuer", "no-tenant"],
)
def test_a_token_with_a_wrong_claim_is_refused(
    issuer: Issuer, verifier: JwtVerifier, claims: dict[str, object], reason: str
) -> None:
    with pytest.raises(UnauthenticatedError) as raised:
        verifier.verify(f"Bearer {issuer.token(**claims)}")
    assert raised.value.reason == reason


def test_a_token_from_another_key_is_refused(verifier: JwtVerifier) -> None:
    with pytest.raises(UnauthenticatedError) as raised:
        verifier.verify(f"Bearer {Issuer().token()}")  # same kid, other key pair
    assert raised.value.reason == "invalid_token"


def test_unsigned_and_symmetric_tokens_are_refused(issuer: Issuer, verifier: JwtVerifier) -> None:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "x",
        "exp": int(time.time()) + 60,
        "tenant": "a",
    }
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": issuer.kid})
    symmetric = jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": issuer.kid})
    for token in (unsigned, symmetric):
        with pytest.raises(UnauthenticatedError) as raised:
            verifier.verify(f"Bearer {token}")
        assert raised.value.reason == "invalid_token"


def test_symmetric_algorithms_cannot_be_configured(issuer: Issuer, tmp_path: Path) -> None:
    keys = load_jwks(issuer.write_jwks(tmp_path / "jwks.json"))
    for algorithms in (["HS256"], ["RS256", "none"], []):
        with pytest.raises(ConfigurationError):
            JwtVerifier(keys, issuer=ISSUER, audience=AUDIENCE, algorithms=algorithms)


@pytest.mark.parametrize(
    "value", ["", "Bearer", "Basic abc", "Bearer not.a.jwt", "Bearer " + "a" * 9000]
)
def test_malformed_authorization_values_are_refused(verifier: JwtVerifier, value: str) -> None:
    with pytest.raises(UnauthenticatedError):
        verifier.verify(value)
