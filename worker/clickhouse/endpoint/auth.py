"""Who is asking: ClickHouse's three ways of passing credentials, checked in constant time.

A ClickHouse server accepts the user and password as HTTP basic auth, as the
``X-ClickHouse-User`` / ``X-ClickHouse-Key`` headers, or as the ``user`` /
``password`` URL parameters, and refuses a request that mixes them. The endpoint
knows one analyst account; anonymous requests pass only when the operator
allowed them, which the settings permit on a loopback address only.
"""

from __future__ import annotations

import binascii
import hmac
from base64 import b64decode
from collections.abc import Mapping
from dataclasses import dataclass

from worker.clickhouse.endpoint.errors import AUTHENTICATION_FAILED, ClickHouseError

ANONYMOUS = "default"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented; ``None`` when it presented nothing."""

    user: str
    password: str


def presented(headers: Mapping[str, str], params: Mapping[str, str]) -> Credentials | None:
    """The credentials of a request, from exactly one of ClickHouse's three places."""
    found: list[Credentials] = []
    authorization = headers.get("Authorization")
    if authorization is not None:
        found.append(_basic(authorization))
    if "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers:
        user = headers.get("X-ClickHouse-User", ANONYMOUS)
        found.append(Credentials(user, headers.get("X-ClickHouse-Key", "")))
    if "user" in params or "password" in params:
        found.append(Credentials(params.get("user", ANONYMOUS), params.get("password", "")))
    if len(found) > 1:
        raise ClickHouseError(
            AUTHENTICATION_FAILED,
            "Invalid authentication: it is not allowed to use more than one of the "
            "Authorization header, the X-ClickHouse-User/Key headers and the "
            "user/password parameters simultaneously.",
        )
    return found[0] if found else None


def _basic(header: str) -> Credentials:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        raise ClickHouseError(
            AUTHENTICATION_FAILED,
            f"Invalid authentication: {scheme} HTTP Authorization scheme is not supported.",
        )
    try:
        decoded = b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ClickHouseError(
            AUTHENTICATION_FAILED, "Invalid authentication: malformed basic credentials."
        ) from exc
    user, _, password = decoded.partition(":")
    return Credentials(user, password)


class Authenticator:
    """Accepts the one configured analyst, and anonymous requests if allowed.

    User and password are both compared, always, with :func:`hmac.compare_digest`,
    so the time taken says nothing about which of them was wrong or how much of it.
    """

    def __init__(self, user: str, password: str, *, allow_anonymous: bool = False) -> None:
        self._user = user.encode()
        self._password = password.encode()
        self.user = user
        self.allow_anonymous = allow_anonymous

    def authenticate(self, credentials: Credentials | None) -> str:
        """The name the request runs as; raises ClickHouse's authentication errors."""
        if credentials is None:
            if self.allow_anonymous:
                return ANONYMOUS
            raise ClickHouseError.password_required()
        user_ok = hmac.compare_digest(credentials.user.encode(), self._user)
        password_ok = hmac.compare_digest(credentials.password.encode(), self._password)
        if user_ok and password_ok:
            return self.user
        if self.allow_anonymous and credentials.user == ANONYMOUS and not credentials.password:
            return ANONYMOUS
        raise ClickHouseError.authentication_failed(credentials.user)
