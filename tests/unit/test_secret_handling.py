"""Secrets come from the environment or ``*_FILE`` files and never show in reprs, logs or output."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.auth.secrets import new_master_key
from worker.errors import ConfigurationError
from worker.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
KAFKA_PASSWORD = "kafka-secret-Ua71"  # noqa: S105 - test values, looked for in the output
REDIS_PASSWORD = "redis-secret-Pm03"  # noqa: S105
CLICKHOUSE_PASSWORD = "ch-secret-Tq55"  # noqa: S105
ANALYST_PASSWORD = "analyst-secret-Lv48"  # noqa: S105
MASTER_KEY = new_master_key()


def secrets() -> tuple[str, ...]:
    return (KAFKA_PASSWORD, REDIS_PASSWORD, CLICKHOUSE_PASSWORD, ANALYST_PASSWORD, MASTER_KEY)


def secret_env(tmp_path: Path) -> dict[str, str]:
    """A configuration with every kind of secret, two of them from files.

    Every address is a closed port on this machine: nothing answers, so each
    dependency check fails with its error text, which must not carry a secret either.
    """
    kafka_file = tmp_path / "kafka-password"
    kafka_file.write_text(KAFKA_PASSWORD + "\n")
    redis_file = tmp_path / "redis-url"
    redis_file.write_text(f"redis://worker:{REDIS_PASSWORD}@127.0.0.1:1/0")
    return {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SASL_PASSWORD_FILE": str(kafka_file),
        "REDIS_URL_FILE": str(redis_file),
        "CLICKHOUSE_URL": f"http://writer:{CLICKHOUSE_PASSWORD}@127.0.0.1:1",
        "CLICKHOUSE_HTTP_PASSWORD": ANALYST_PASSWORD,
        "SECURITY_MASTER_KEY": MASTER_KEY,
        "WORKER_DATA_DIR": str(tmp_path / "data"),
        "WORKER_TOPICS_FILE": str(REPO / "topics" / "topics.toml"),
    }


def test_secret_files_are_read_and_nothing_prints_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in secret_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.DEBUG):
        settings = load_settings()
    password = settings.kafka.sasl_password
    assert password is not None
    assert password.get_secret_value() == KAFKA_PASSWORD, "read from the file, newline stripped"
    assert REDIS_PASSWORD in settings.redis.url.get_secret_value()
    models = [getattr(settings, name) for name in settings.__slots__]
    printed = " ".join(f"{model!r} {model} {model.model_dump()}" for model in models)
    printed += settings.redis.describe() + settings.clickhouse.describe() + caplog.text
    for secret in secrets():
        assert secret not in printed


def test_a_secret_in_both_the_variable_and_a_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in secret_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", KAFKA_PASSWORD)
    with pytest.raises(
        ConfigurationError, match="KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE"
    ):
        load_settings()


def test_an_unreadable_secret_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="REDIS_PASSWORD_FILE") as refused:
        load_settings()
    assert refused.value.code == "configuration_invalid"


def test_an_invalid_configuration_never_quotes_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in secret_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    # The password is now configured but unused: refused, without repeating it.
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    monkeypatch.setenv("REDIS_TLS_VERIFY", "false")
    with pytest.raises(ConfigurationError) as refused:
        load_settings()
    text = f"{refused.value} {refused.value.details}"
    assert "KAFKA_SECURITY_PROTOCOL" in text
    assert "REDIS_TLS_VERIFY" in text
    for secret in secrets():
        assert secret not in text


def test_worker_doctor_output_carries_no_secret(tmp_path: Path) -> None:
    env = {**os.environ, **secret_env(tmp_path), "WORKER_LOG_LEVEL": "debug"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from worker.cli.main import main; main()",
            "doctor",
            "--timeout",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, "every dependency is unreachable: the doctor must say so"
    assert "KafkaConnectionError" in output, "the Kafka check ran, with the SASL_SSL settings"
    assert "127.0.0.1:1" in output
    for secret in secrets():
        assert secret not in output
