"""ClickHouse's error text, codes and HTTP statuses, as the endpoint answers them."""

from __future__ import annotations

import pytest

from worker.clickhouse.endpoint.errors import ClickHouseError
from worker.errors import WorkerError


def test_a_chdb_message_is_parsed_into_code_name_and_text() -> None:
    error = ClickHouseError.parse(
        "Code: 164. DB::Exception: default: Cannot execute query in readonly mode. (READONLY)"
    )
    assert (error.number, error.name) == (164, "READONLY")
    assert error.text == "default: Cannot execute query in readonly mode."


def test_nested_messages_are_unwrapped_to_the_innermost() -> None:
    error = ClickHouseError.parse(
        "Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'readonly' "
        "setting in readonly mode. (READONLY) (version 26.9.2.1). (READONLY)"
    )
    assert (error.number, error.name) == (164, "READONLY")
    assert error.text == "Cannot modify 'readonly' setting in readonly mode."


def test_a_message_without_a_code_is_a_std_exception() -> None:
    error = ClickHouseError.parse("something broke")
    assert (error.number, error.name, error.text) == (1001, "STD_EXCEPTION", "something broke")
    assert error.http_status == 500


def test_the_body_is_clickhouses_with_the_engine_version() -> None:
    error = ClickHouseError.authentication_failed("bob")
    assert error.body("26.9.2.1") == (
        "Code: 516. DB::Exception: bob: Authentication failed: password is incorrect, "
        "or there is no user with such name. (AUTHENTICATION_FAILED) (version 26.9.2.1)\n"
    )
    assert isinstance(error, WorkerError)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ClickHouseError.password_required(), 401),
        (ClickHouseError.authentication_failed("x"), 403),
        (ClickHouseError.readonly("x"), 500),
        (ClickHouseError.readonly_setting("readonly"), 500),
        (ClickHouseError.setting_above_cap("max_threads", 1), 500),
        (ClickHouseError.parse("Code: 62. DB::Exception: Syntax error. (SYNTAX_ERROR)"), 400),
        (ClickHouseError.parse("Code: 60. DB::Exception: no t. (UNKNOWN_TABLE)"), 404),
        (ClickHouseError.parse("Code: 159. DB::Exception: Timeout. (TIMEOUT_EXCEEDED)"), 408),
        (ClickHouseError.parse("Code: 229. DB::Exception: big. (QUERY_IS_TOO_LARGE)"), 413),
        (ClickHouseError.parse("Code: 48. DB::Exception: no. (NOT_IMPLEMENTED)"), 501),
        (ClickHouseError.parse("Code: 241. DB::Exception: mem. (MEMORY_LIMIT_EXCEEDED)"), 500),
    ],
)
def test_http_status_follows_clickhouses_mapping(error: ClickHouseError, status: int) -> None:
    assert error.http_status == status


def test_chdb_user_is_replaced_by_the_analyst() -> None:
    error = ClickHouseError.parse(
        "Code: 164. DB::Exception: default: Cannot execute query in readonly mode. (READONLY)"
    ).for_user("analyst")
    assert error.text == "analyst: Cannot execute query in readonly mode."
    other = ClickHouseError.readonly_setting("x")
    assert other.for_user("analyst") is other
