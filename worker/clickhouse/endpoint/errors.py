"""ClickHouse's errors as the endpoint answers them: code, name, message, HTTP status.

A client of the endpoint (clickhouse-connect, curl, a dashboard) must see exactly
what a ClickHouse server would send: the body
``Code: 164. DB::Exception: analyst: Cannot execute query in readonly mode. (READONLY)
(version 26.9.2.1)``, the ``X-ClickHouse-Exception-Code`` header and the HTTP status
ClickHouse chooses for that code. Errors raised by chDB arrive as that text and
are parsed back into a :class:`ClickHouseError`; the endpoint's own refusals
(authentication, read-only, limits) are built with the class methods below.
"""

from __future__ import annotations

import re
from typing import ClassVar

from worker.errors import WorkerError

# The codes the endpoint raises itself, by ClickHouse name (src/Common/ErrorCodes.cpp).
BAD_ARGUMENTS = 36
NOT_IMPLEMENTED = 48
SYNTAX_ERROR = 62
UNKNOWN_FORMAT = 73
READONLY = 164
REQUIRED_PASSWORD = 194
TOO_MANY_SIMULTANEOUS_QUERIES = 202
QUERY_IS_TOO_LARGE = 229
ABORTED = 236
QUERY_WAS_CANCELLED = 394
INTO_OUTFILE_NOT_ALLOWED = 358
SETTING_CONSTRAINT_VIOLATION = 452
ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516
STD_EXCEPTION = 1001

_NAMES = {
    BAD_ARGUMENTS: "BAD_ARGUMENTS",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    SYNTAX_ERROR: "SYNTAX_ERROR",
    UNKNOWN_FORMAT: "UNKNOWN_FORMAT",
    READONLY: "READONLY",
    REQUIRED_PASSWORD: "REQUIRED_PASSWORD",
    TOO_MANY_SIMULTANEOUS_QUERIES: "TOO_MANY_SIMULTANEOUS_QUERIES",
    QUERY_IS_TOO_LARGE: "QUERY_IS_TOO_LARGE",
    ABORTED: "ABORTED",
    QUERY_WAS_CANCELLED: "QUERY_WAS_CANCELLED",
    INTO_OUTFILE_NOT_ALLOWED: "INTO_OUTFILE_NOT_ALLOWED",
    SETTING_CONSTRAINT_VIOLATION: "SETTING_CONSTRAINT_VIOLATION",
    ACCESS_DENIED: "ACCESS_DENIED",
    AUTHENTICATION_FAILED: "AUTHENTICATION_FAILED",
    STD_EXCEPTION: "STD_EXCEPTION",
}

# The HTTP status ClickHouse's HTTP handler gives each error name; every other
# name is 500 (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp).
_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        (
            "UNKNOWN_USER",
            "WRONG_PASSWORD",
            "AUTHENTICATION_FAILED",
            "SET_NON_GRANTED_ROLE",
            "ACCESS_DENIED",
        ),
        403,
    ),
    **dict.fromkeys(
        (
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ),
        400,
    ),
    **dict.fromkeys(
        (
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ),
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "CANNOT_SCHEDULE_TASK": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

# ``Code: 164. DB::Exception: <text> (READONLY) (version 26.9.2.1)``; chDB sometimes
# nests one such message inside another, each with its own name and version.
_PREFIX = re.compile(r"^\s*Code: (\d+)\. DB::Exception: ")
_SUFFIX = re.compile(r"\s*(?:\(([A-Z][A-Z0-9_]*)\))?\s*(?:\(version [^)]*\))?\.?\s*$")
_CHDB_USER = "default: "


class ClickHouseError(WorkerError):
    """A query the endpoint answers with ClickHouse's error: ``code``, ``name``, ``text``."""

    code: ClassVar[str] = "clickhouse_error"

    def __init__(self, number: int, text: str, name: str | None = None) -> None:
        self.number = number
        self.name = name or _NAMES.get(number, "UNKNOWN_EXCEPTION")
        self.text = text
        super().__init__(
            f"Code: {number}. DB::Exception: {text} ({self.name})",
            details={"number": number, "name": self.name},
        )

    @property
    def http_status(self) -> int:
        """The status ClickHouse's HTTP handler answers this error with."""
        return _STATUS_BY_NAME.get(self.name, 500)

    def body(self, version: str) -> str:
        """The response body, as a ClickHouse server writes it."""
        return f"{self.message} (version {version})\n"

    def for_user(self, user: str) -> ClickHouseError:
        """The same error naming ``user`` where chDB names its built-in user ``default``."""
        if not self.text.startswith(_CHDB_USER):
            return self
        return ClickHouseError(self.number, f"{user}: {self.text[len(_CHDB_USER) :]}", self.name)

    @classmethod
    def parse(cls, message: str) -> ClickHouseError:
        """An error from the text chDB raised, unwrapping nested ``Code: ...`` messages."""
        match = _PREFIX.match(message)
        if match is None:
            return cls(STD_EXCEPTION, message.strip() or "unknown error")
        number = int(match[1])
        text = message[match.end() :]
        name: str | None = None
        while True:
            suffix = _SUFFIX.search(text)
            if suffix is not None and suffix.start() < len(text):
                name = name or suffix[1]
                text = text[: suffix.start()]
            inner = _PREFIX.match(text)
            if inner is None:
                break
            number, text = int(inner[1]), text[inner.end() :]
        return cls(number, _sentence(text), name)

    # The endpoint's own refusals, worded as ClickHouse words them.

    @classmethod
    def readonly(cls, user: str) -> ClickHouseError:
        return cls(READONLY, f"{user}: Cannot execute query in readonly mode.")

    @classmethod
    def readonly_setting(cls, name: str) -> ClickHouseError:
        return cls(READONLY, f"Cannot modify '{name}' setting in readonly mode.")

    @classmethod
    def setting_above_cap(cls, name: str, cap: float | int) -> ClickHouseError:
        return cls(
            SETTING_CONSTRAINT_VIOLATION,
            f"Setting {name} should be between 1 and {cap} on this endpoint "
            "(0 would mean unlimited).",
        )

    @classmethod
    def authentication_failed(cls, user: str) -> ClickHouseError:
        return cls(
            AUTHENTICATION_FAILED,
            f"{user}: Authentication failed: password is incorrect, "
            "or there is no user with such name.",
        )

    @classmethod
    def password_required(cls) -> ClickHouseError:
        return cls(REQUIRED_PASSWORD, "Credentials are required: user and password.")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", ")", "!", "?")) else f"{text}."
