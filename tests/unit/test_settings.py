"""Loading settings: every invalid variable is named, with the reason, in one error."""

from __future__ import annotations

import pytest

from worker.errors import ConfigurationError
from worker.settings import load_settings


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
