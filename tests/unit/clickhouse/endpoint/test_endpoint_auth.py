"""Credentials from ClickHouse's three places, checked for the one analyst account."""

from __future__ import annotations

from base64 import b64encode

import pytest
from multidict import CIMultiDict

from worker.clickhouse.endpoint.auth import Authenticator, Credentials, presented
from worker.clickhouse.endpoint.errors import ClickHouseError


def basic(user: str, password: str) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"authorization": basic("ann", "s3:cret")}, {}),
        ({"X-ClickHouse-User": "ann", "X-ClickHouse-Key": "s3:cret"}, {}),
        ({}, {"user": "ann", "password": "s3:cret"}),
    ],
    ids=["basic", "x-clickhouse-headers", "url-parameters"],
)
def test_each_place_yields_the_credentials(headers: dict[str, str], params: dict[str, str]) -> None:
    assert presented(CIMultiDict(headers), params) == Credentials("ann", "s3:cret")


def test_no_credentials_is_none() -> None:
    assert presented(CIMultiDict(), {"query": "SELECT 1"}) is None


def test_two_places_at_once_are_refused() -> None:
    with pytest.raises(ClickHouseError) as caught:
        presented(CIMultiDict({"Authorization": basic("a", "b")}), {"user": "a"})
    assert caught.value.name == "AUTHENTICATION_FAILED"


@pytest.mark.parametrize("header", ["Bearer abc", "Basic not-base64!", "Basic " + "//79"])
def test_unusable_authorization_headers_are_refused(header: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        presented(CIMultiDict({"Authorization": header}), {})
    assert caught.value.http_status == 403


def test_the_configured_analyst_is_accepted() -> None:
    assert Authenticator("ann", "pw").authenticate(Credentials("ann", "pw")) == "ann"


@pytest.mark.parametrize(
    "credentials", [Credentials("ann", "wrong"), Credentials("bob", "pw"), Credentials("ann", "")]
)
def test_a_wrong_user_or_password_is_authentication_failed(credentials: Credentials) -> None:
    with pytest.raises(ClickHouseError) as caught:
        Authenticator("ann", "pw").authenticate(credentials)
    assert (caught.value.number, caught.value.http_status) == (516, 403)
    assert caught.value.text.startswith(f"{credentials.user}: Authentication failed")


def test_missing_credentials_are_required_unless_anonymous_is_allowed() -> None:
    with pytest.raises(ClickHouseError) as caught:
        Authenticator("ann", "pw").authenticate(None)
    assert (caught.value.name, caught.value.http_status) == ("REQUIRED_PASSWORD", 401)

    anonymous = Authenticator("ann", "pw", allow_anonymous=True)
    assert anonymous.authenticate(None) == "default"
    assert anonymous.authenticate(Credentials("default", "")) == "default"
    with pytest.raises(ClickHouseError):
        anonymous.authenticate(Credentials("ann", "wrong"))
