"""Fault injection: kill points, a ClickHouse switched off by a file, failing operations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError as ClickHouseDatabaseError
from clickhouse_connect.driver.exceptions import OperationalError

from worker.errors import ConfigurationError
from worker.faults import ClickHouseOutage, FaultInjector
from worker.operations.quote import QuoteParams
from worker.operations.registry import default_registry
from worker.operations.text_stats import TextStatsParams
from worker.settings import FaultSettings
from worker.sinks.pacing import classify


class SimulatedKillError(Exception):
    """Stands in for SIGKILL, so the test survives it."""


def kill() -> None:
    raise SimulatedKillError


def test_no_point_configured_never_kills() -> None:
    faults = FaultInjector(FaultSettings(point=None), kill=kill)
    for point in ("before_insert", "after_insert", "after_publish", "after_ack"):
        faults.reached(point)  # type: ignore[arg-type]


def test_the_configured_point_kills_after_the_given_number_of_batches() -> None:
    faults = FaultInjector(FaultSettings(point="after_insert", after_batches=2), kill=kill)
    faults.reached("after_insert")
    faults.reached("before_insert")
    faults.reached("after_insert")
    faults.reached("after_publish")
    with pytest.raises(SimulatedKillError):
        faults.reached("after_insert")
    assert faults.passed == 2


def test_zero_batches_kills_on_the_first_batch() -> None:
    faults = FaultInjector(FaultSettings(point="after_ack"), kill=kill)
    with pytest.raises(SimulatedKillError):
        faults.reached("after_ack")


def test_the_settings_read_the_worker_fault_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_FAULT_POINT", "after_publish")
    monkeypatch.setenv("WORKER_FAULT_AFTER_BATCHES", "5")
    monkeypatch.setenv("WORKER_FAULT_CLICKHOUSE_DOWN_FILE", "/tmp/ch-down")  # noqa: S108
    settings = FaultSettings()
    assert (settings.point, settings.after_batches) == ("after_publish", 5)
    assert settings.clickhouse_down_file == Path("/tmp/ch-down")  # noqa: S108


class RecordingClient:
    """A stand-in ClickHouse client that records the calls reaching it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.database = "db"

    def insert(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append("insert")
        return "inserted"

    def query(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append("query")
        return "rows"

    def command(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append("command")
        return "done"

    def close(self) -> None:
        self.calls.append("close")


class TestClickHouseOutage:
    def test_without_a_file_setting_the_factory_is_unchanged(self) -> None:
        def connect() -> RecordingClient:
            return RecordingClient()

        assert FaultInjector(FaultSettings()).clickhouse(connect) is connect

    def test_calls_fail_while_the_file_exists_and_pass_once_it_is_gone(
        self, tmp_path: Path
    ) -> None:
        flag = tmp_path / "down"
        inner = RecordingClient()
        client = FaultInjector(FaultSettings(clickhouse_down_file=flag)).clickhouse(lambda: inner)()
        assert client.insert("t", []) == "inserted"
        flag.touch()
        for call in (client.insert, client.query, client.command):
            with pytest.raises(OperationalError, match="Connection refused"):
                call("anything")
        flag.unlink()
        assert client.query("SELECT 1") == "rows"
        assert inner.calls == ["insert", "query"], "nothing reached ClickHouse while down"
        client.close()
        assert client.database == "db"
        assert inner.calls[-1] == "close"

    @pytest.mark.parametrize(
        ("content", "name"),
        [("too_many_parts", "TOO_MANY_PARTS"), ("memory_limit_exceeded", "MEMORY_LIMIT_EXCEEDED")],
    )
    def test_the_file_content_picks_an_overload_error(
        self, tmp_path: Path, content: str, name: str
    ) -> None:
        flag = tmp_path / "down"
        flag.write_text(content)
        client = ClickHouseOutage(RecordingClient(), flag)
        with pytest.raises(ClickHouseDatabaseError) as caught:
            client.insert("t", [])
        error = classify(caught.value)
        assert error.code == "database_overloaded"
        assert error.details["name"] == name


def test_a_failing_operation_keeps_its_face_and_fails_every_call() -> None:
    registry = FaultInjector(FaultSettings(failing_operations=" text.stats ,")).operations(
        default_registry()
    )
    failing, untouched = registry.get("text.stats"), registry.get("price.quote")
    assert failing is not None
    assert untouched is not None
    assert (failing.scopes, failing.params_model, failing.cache_ttl_s) == (
        frozenset({"text:analyze"}),
        TextStatsParams,
        3600.0,
    )
    with pytest.raises(ConnectionError, match="fault injection"):
        asyncio.run(failing.handle([("acme", TextStatsParams(text="x"))]))
    [quote] = asyncio.run(untouched.handle([("acme", QuoteParams(sku="SKU-1", quantity=1))]))
    assert not isinstance(quote, Exception)


def test_no_failing_operations_leaves_the_registry_alone_and_unknown_ones_are_refused() -> None:
    registry = default_registry()
    assert FaultInjector(FaultSettings()).operations(registry) is registry
    with pytest.raises(ConfigurationError, match=r"no\.such\.op"):
        FaultInjector(FaultSettings(failing_operations="no.such.op")).operations(registry)
