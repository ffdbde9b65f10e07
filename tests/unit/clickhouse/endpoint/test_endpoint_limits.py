"""The settings of an analyst query: caps, what a client may change, readonly=1 last."""

from __future__ import annotations

import pytest

from worker.clickhouse.endpoint.errors import ClickHouseError
from worker.clickhouse.endpoint.limits import QueryLimits, split_params
from worker.settings import ClickHouseHttpSettings

LIMITS = QueryLimits(
    max_execution_time=30.0,
    max_memory_usage=1 << 30,
    max_result_rows=1000,
    max_result_bytes=1 << 20,
    max_threads=2,
    max_query_size=1024,
)


def test_the_caps_apply_by_default_and_readonly_comes_last() -> None:
    settings = LIMITS.session_settings({}, tag="t-1")
    assert settings["max_execution_time"] == "30"
    assert settings["max_memory_usage"] == str(1 << 30)
    assert settings["max_result_rows"] == "1000"
    assert settings["max_result_bytes"] == str(1 << 20)
    assert settings["max_threads"] == "2"
    assert settings["result_overflow_mode"] == "throw"
    assert settings["max_temporary_data_on_disk_size_for_query"] == str(1 << 30)
    assert settings["max_query_size"] == "1024"
    assert settings["enable_http_compression"] == "0"
    assert settings["log_comment"] == "t-1"
    assert list(settings)[-1] == "readonly"
    assert settings["readonly"] == "1"


def test_a_client_may_lower_a_cap() -> None:
    settings = LIMITS.session_settings(
        {"max_result_rows": "10", "max_execution_time": "1.5", "max_threads": "1"}, tag="t"
    )
    assert (settings["max_result_rows"], settings["max_execution_time"]) == ("10", "1.5")
    assert settings["max_threads"] == "1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_result_rows", "1001"),
        ("max_result_rows", "0"),  # 0 is "unlimited" to ClickHouse
        ("max_execution_time", "31"),
        ("max_execution_time", "0"),
        ("max_memory_usage", str((1 << 30) + 1)),
        ("max_threads", "3"),
        ("max_result_bytes", "-1"),
    ],
)
def test_a_client_cannot_raise_or_lift_a_cap(name: str, value: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        LIMITS.session_settings({name: value}, tag="t")
    assert caught.value.name == "SETTING_CONSTRAINT_VIOLATION"


def test_a_cap_that_is_not_a_number_is_a_bad_argument() -> None:
    with pytest.raises(ClickHouseError) as caught:
        LIMITS.session_settings({"max_threads": "many"}, tag="t")
    assert caught.value.name == "BAD_ARGUMENTS"


@pytest.mark.parametrize("value", ["0", "2", " 0 "])
def test_readonly_cannot_be_lifted(value: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        LIMITS.session_settings({"readonly": value}, tag="t")
    assert (caught.value.number, caught.value.name) == (164, "READONLY")
    assert "Cannot modify 'readonly' setting in readonly mode" in caught.value.text


def test_readonly_one_is_accepted() -> None:
    assert LIMITS.session_settings({"readonly": "1"}, tag="t")["readonly"] == "1"


@pytest.mark.parametrize(
    "name",
    [
        "allow_introspection_functions",
        "log_comment",  # the endpoint's tag for its own queries
        "max_query_size",
        "format_template_resultset",  # a path the server would read
        "output_format_schema",  # a path the server would write
        "max_rows_to_read",
        "not_a_setting",
    ],
)
def test_other_settings_are_readonly_errors(name: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        LIMITS.session_settings({name: "1"}, tag="t")
    assert caught.value.name == "READONLY"
    assert f"Cannot modify '{name}' setting" in caught.value.text


def test_presentation_settings_may_be_changed() -> None:
    settings = LIMITS.session_settings(
        {"output_format_json_quote_64bit_integers": "0", "result_overflow_mode": "break"}, tag="t"
    )
    assert settings["output_format_json_quote_64bit_integers"] == "0"
    assert settings["result_overflow_mode"] == "break"
    assert list(settings)[-1] == "readonly"


def test_parameters_split_into_query_parameters_and_settings() -> None:
    bound, requested = split_params(
        {
            "query": "SELECT {x:String}",
            "param_x": "a",
            "database": "worker",
            "default_format": "JSON",
            "query_id": "q",
            "session_id": "s",
            "wait_end_of_query": "1",
            "client_protocol_version": "54405",
            "enable_http_compression": "1",
            "compress": "0",
            "max_threads": "1",
        }
    )
    assert bound == {"x": "a"}
    assert requested == {"max_threads": "1"}


@pytest.mark.parametrize("name", ["compress", "decompress"])
def test_clickhouse_compressed_transfer_is_not_implemented(name: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        split_params({name: "1"})
    assert (caught.value.name, caught.value.http_status) == ("NOT_IMPLEMENTED", 501)


def test_limits_come_from_the_settings() -> None:
    settings = ClickHouseHttpSettings(max_result_rows=5, max_threads=3, max_execution_time=2)
    limits = QueryLimits.from_settings(settings)
    assert limits.caps() == {
        "max_execution_time": 2.0,
        "max_memory_usage": settings.max_memory_usage,
        "max_result_rows": 5,
        "max_result_bytes": settings.max_result_bytes,
        "max_threads": 3,
    }
