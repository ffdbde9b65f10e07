"""The settings models' own rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.settings import (
    ClickHouseHttpSettings,
    ClickHouseSettings,
    KafkaSettings,
    LimitsSettings,
    RedisSettings,
    SecuritySettings,
    Settings,
    WorkerSettings,
    is_loopback,
)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104 - the point of the test
        ("::", False),
        ("10.0.0.5", False),
        ("example.org", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_anonymous_analysts_are_allowed_on_loopback_only() -> None:
    assert ClickHouseHttpSettings(allow_anonymous=True).allow_anonymous
    with pytest.raises(ValidationError, match="only allowed with a loopback"):
        ClickHouseHttpSettings(host="0.0.0.0", allow_anonymous=True)  # noqa: S104
    assert ClickHouseHttpSettings(host="0.0.0.0").host == "0.0.0.0"  # noqa: S104


def test_the_endpoint_defaults_are_the_documented_ones() -> None:
    settings = ClickHouseHttpSettings.model_construct()
    assert (settings.enabled, settings.host, settings.port) == (True, "127.0.0.1", 8124)
    assert (settings.user, settings.password, settings.allow_anonymous) == ("analyst", None, False)
    assert settings.max_concurrent_queries == 2
    assert settings.max_execution_time == 30.0
    assert settings.max_memory_usage == 1 << 30
    assert (settings.max_result_rows, settings.max_result_bytes) == (1_000_000, 128 << 20)
    assert settings.max_threads == 1


def test_settings_built_without_the_endpoint_get_its_defaults() -> None:
    settings = Settings(
        kafka=KafkaSettings(),
        clickhouse=ClickHouseSettings(url=None),
        redis=RedisSettings(),
        limits=LimitsSettings(),
        security=SecuritySettings(),
        worker=WorkerSettings(),
    )
    assert settings.clickhouse_http == ClickHouseHttpSettings.model_construct()


def test_the_password_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_HTTP_PASSWORD", "hunter2")
    settings = ClickHouseHttpSettings()
    assert settings.password is not None
    assert settings.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)
