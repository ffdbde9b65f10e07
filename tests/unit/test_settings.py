"""The settings models' own rules, and loading them: invalid variables are named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from tests.support.settings import settings_under
from worker.app import build_app
from worker.auth.secrets import new_master_key
from worker.errors import ConfigurationError
from worker.settings import (
    CacheSettings,
    ClickHouseHttpSettings,
    ClickHouseSettings,
    KafkaSettings,
    LimitsSettings,
    RedisSettings,
    SecuritySettings,
    Settings,
    WorkerSettings,
    is_loopback,
    load_settings,
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
        cache=CacheSettings(),
    )
    assert settings.clickhouse_http == ClickHouseHttpSettings.model_construct()


def test_the_password_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_HTTP_PASSWORD", "hunter2")
    settings = ClickHouseHttpSettings()
    assert settings.password is not None
    assert settings.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)


def test_invalid_variables_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_S", "1")
    monkeypatch.setenv("WORKER_BATCH_MAX", "many")
    monkeypatch.setenv("WORKER_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    variables = [error["variable"] for error in raised.value.details["errors"]]
    assert variables == ["KAFKA_SESSION_TIMEOUT_S", "WORKER_BATCH_MAX", "WORKER_LOG_FORMAT"]
    assert "Operator action" in raised.value.message


def test_the_observability_settings_have_operable_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "WORKER_LOG_FORMAT",
        "WORKER_SHUTDOWN_TIMEOUT_S",
        "WORKER_STALL_TIMEOUT_S",
        "WORKER_EXIT_ON_STALL",
        "WORKER_FAULT_CLICKHOUSE_INSERT_DELAY_S",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.worker.log_format == "json"
    # Below the 30 s stop grace period of docker-compose.yml, so the worker ends itself.
    assert settings.worker.shutdown_timeout_s < 30
    assert settings.worker.stall_timeout_s > settings.worker.health_interval_s
    assert settings.worker.exit_on_stall is False
    assert settings.faults.clickhouse_insert_delay_s == 0


def test_a_request_timeout_too_close_to_the_session_timeout_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="KAFKA_REQUEST_TIMEOUT_S=20 is below"):
        KafkaSettings(session_timeout_s=15, request_timeout_s=20)
    kafka = KafkaSettings(session_timeout_s=40, request_timeout_s=50)
    assert (kafka.request_timeout_s, kafka.rebalance_timeout_s) == (50, 40)


def test_the_consumer_gets_the_request_timeout_not_faust_s_ninety_seconds(tmp_path: Path) -> None:
    settings = settings_under(
        tmp_path,
        kafka=KafkaSettings(request_timeout_s=35),
        security=SecuritySettings(master_key=SecretStr(new_master_key())),
    )
    conf = build_app(settings).faust.conf
    timeouts = (conf.broker_request_timeout, conf.broker_rebalance_timeout)
    assert timeouts == (35, 25), "a join request outlasts the rebalance it waits for"
    assert conf.broker_session_timeout == 15
    assert KafkaSettings().request_timeout_s == 40, "aiokafka's own default"
