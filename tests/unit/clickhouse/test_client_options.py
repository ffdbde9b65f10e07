"""What the settings turn into when the worker connects to a ClickHouse server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from worker.clickhouse.client import connect, server_options
from worker.errors import ConfigurationError
from worker.settings import ClickHouseSettings


def settings(
    url: str = "https://writer:s3cret@ch.internal:8443", **values: Any
) -> ClickHouseSettings:
    return ClickHouseSettings(url=SecretStr(url), **values)


def test_a_server_gets_timeouts_and_no_client_side_retries() -> None:
    options = server_options(settings(connect_timeout_s=3, query_timeout_s=20))
    assert options == {
        "interface": "https",
        "connect_timeout": 3.0,
        "send_receive_timeout": 20.0,
        "query_retries": 0,
    }


@pytest.mark.parametrize(
    ("url", "interface"),
    [
        ("https://ch.internal:9440", "https"),  # a port clickhouse-connect would not guess
        ("http://ch.internal:8443", "http"),  # nor upgrade a plain URL behind the operator's back
    ],
)
def test_the_url_scheme_alone_decides_tls(url: str, interface: str) -> None:
    assert server_options(settings(url))["interface"] == interface


def test_https_verifies_against_the_system_cas_by_default() -> None:
    options = server_options(settings())
    assert "verify" not in options, "clickhouse-connect verifies unless told otherwise"
    assert "ca_cert" not in options


def existing(path: Path) -> Path:
    """A file that exists: certificate paths are checked when the settings are read."""
    path.touch()
    return path


def test_tls_options_become_client_options(tmp_path: Path) -> None:
    ca, cert, key = (existing(tmp_path / name) for name in ("ca.pem", "client.pem", "client.key"))
    options = server_options(
        settings(
            tls_ca_cert=ca,
            tls_client_cert=cert,
            tls_client_key=key,
            tls_server_host_name="clickhouse.internal",
        )
    )
    assert options["ca_cert"] == str(ca)
    assert options["client_cert"] == str(cert)
    assert options["client_cert_key"] == str(key)
    assert options["server_host_name"] == "clickhouse.internal"
    assert "verify" not in options


def test_verification_can_be_switched_off_explicitly() -> None:
    assert server_options(settings(tls_verify=False))["verify"] is False


def test_tls_options_on_a_plain_http_url_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_TLS_CA_CERT need an https://"):
        server_options(settings("http://ch:8123", tls_ca_cert=existing(tmp_path / "ca.pem")))
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_TLS_VERIFY"):
        server_options(settings("http://ch:8123", tls_verify=False))


def test_a_client_key_without_its_certificate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_TLS_CLIENT_CERT"):
        server_options(settings(tls_client_key=existing(tmp_path / "client.key")))


def test_connect_refuses_a_bad_tls_configuration_before_any_network_call(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigurationError):
        connect(settings("http://127.0.0.1:1", tls_ca_cert=existing(tmp_path / "ca.pem")))


def test_the_tls_and_retention_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLICKHOUSE_TLS_CA_CERT", str(existing(tmp_path / "ca.pem")))
    monkeypatch.setenv("CLICKHOUSE_TLS_VERIFY", "false")
    monkeypatch.setenv("CLICKHOUSE_RETENTION_DAYS", "14")
    monkeypatch.setenv("CLICKHOUSE_MIGRATE_ON_START", "false")
    loaded = ClickHouseSettings()
    assert loaded.tls_ca_cert == tmp_path / "ca.pem"
    assert loaded.tls_verify is False
    assert loaded.retention_days == 14
    assert loaded.migrate_on_start is False


def test_a_missing_ca_file_is_refused_when_the_settings_are_read(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such file"):
        settings(tls_ca_cert=tmp_path / "missing.pem")
