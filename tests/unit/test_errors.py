"""The exception tree: stable, unique codes; client errors answered, server errors retried."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import orjson
import pytest

from worker import errors
from worker.errors import (
    ClientError,
    ConfigurationError,
    PayloadTooDeepError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    UnknownOperationError,
    ValidationFailedError,
    WorkerError,
)

ERROR_CLASSES = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, WorkerError) and cls.__module__ == errors.__name__
]
CLIENT_ERRORS = [cls for cls in ERROR_CLASSES if issubclass(cls, ClientError)]
SERVER_ERRORS = [cls for cls in ERROR_CLASSES if issubclass(cls, ServerError)]


def test_the_tree_is_found() -> None:
    assert len(CLIENT_ERRORS) >= 8
    assert len(SERVER_ERRORS) >= 4
    assert ConfigurationError in ERROR_CLASSES


def test_every_error_class_has_its_own_code() -> None:
    codes = [cls.code for cls in ERROR_CLASSES]
    assert len(codes) == len(set(codes)), sorted(codes)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_codes_are_snake_case_identifiers(cls: type[WorkerError]) -> None:
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", cls.code)


@pytest.mark.parametrize("cls", CLIENT_ERRORS, ids=lambda cls: cls.__name__)
def test_client_errors_are_not_retriable(cls: type[ClientError]) -> None:
    assert cls.retriable is False


@pytest.mark.parametrize("cls", SERVER_ERRORS, ids=lambda cls: cls.__name__)
def test_server_errors_are_retriable(cls: type[ServerError]) -> None:
    assert cls.retriable is True


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_the_module_documentation_lists_every_code(cls: type[WorkerError]) -> None:
    doc = errors.__doc__ or ""
    assert re.search(rf"\b{cls.__name__}\b.*\b{cls.code}\b", doc) or cls in (
        ClientError,
        ServerError,
    ), f"{cls.__name__} ({cls.code}) is missing from the tree in worker/errors.py"


def test_to_dict_is_the_response_error_body() -> None:
    error = PayloadTooLargeError(300, 200)
    body = error.to_dict()
    assert body == {
        "code": "payload_too_large",
        "message": "message of 300 bytes exceeds the limit of 200 bytes",
        "details": {"size": 300, "limit": 200},
    }
    assert orjson.loads(orjson.dumps(body)) == body


def test_details_are_copied_not_shared() -> None:
    details = {"a": 1}
    error = WorkerError("x", details=details)
    details["a"] = 2
    assert error.details == {"a": 1}
    assert WorkerError("y").details == {}


def test_a_validation_failure_names_its_first_path() -> None:
    error = ValidationFailedError(
        [
            {"path": "params.quantity", "message": "Input should be a valid integer"},
            {"path": "tenant", "message": "Field required"},
        ]
    )
    assert error.path == "params.quantity"
    assert error.message == "params.quantity: Input should be a valid integer"
    assert [item["path"] for item in error.details["errors"]] == ["params.quantity", "tenant"]


def test_a_validation_failure_of_the_root_says_so() -> None:
    assert ValidationFailedError([{"path": "", "message": "bad"}]).message == "<root>: bad"
    assert ValidationFailedError([]).path == ""


def test_specific_errors_carry_their_data() -> None:
    assert UnknownOperationError("x", ["b", "a"]).details["known"] == ["a", "b"]
    assert RateLimitedError(250).retry_after_ms == 250
    assert RateLimitedError(250).details == {"retry_after_ms": 250}
    deep = PayloadTooDeepError(32)
    assert isinstance(deep, errors.InvalidPayloadError)
    assert deep.code == "payload_too_deep"


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_docs_errors_md_documents_every_code(cls: type[WorkerError]) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text(encoding="utf-8")
    if cls in (ClientError, ServerError, WorkerError):
        return
    assert f"`{cls.code}`" in doc, f"{cls.code} is missing from docs/errors.md"
