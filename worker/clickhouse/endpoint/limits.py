"""The settings every analyst query runs with, and which of them a client may change.

Each query gets a fresh chDB session whose settings the endpoint sets, in one
``SET`` statement, before it runs the client's SQL:

- the caps (``max_execution_time``, ``max_memory_usage``, ``max_result_rows``,
  ``max_result_bytes``, ``max_threads``) and ``result_overflow_mode='throw'``;
  spilling to disk is capped at ``max_memory_usage`` as well, and the SQL at
  ``max_query_size`` bytes (the request body limit too);
- what the client asked for in URL parameters, if it may ask for it: a cap may be
  lowered, never raised or lifted (0 means unlimited to ClickHouse, so it is a
  raise); a short list of presentation settings may be changed; every other
  setting is refused with ClickHouse's readonly error, as a server refuses it to a
  ``readonly=1`` user;
- ``readonly=1`` last. From then on ClickHouse itself refuses any change of
  settings inside the query (``SET``, ``SETTINGS``), so a query cannot lift it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from worker.clickhouse.endpoint.errors import BAD_ARGUMENTS, NOT_IMPLEMENTED, ClickHouseError
from worker.settings import ClickHouseHttpSettings

# URL parameters that belong to the HTTP protocol, not to the query's settings.
# The endpoint uses the first group and accepts the second without effect: sessions
# carry no state (every query has a fresh read-only session), progress headers and
# response compression are not sent, and chDB speaks no client protocol revision.
USED_PARAMS = frozenset(
    {"query", "database", "default_format", "query_id", "user", "password"}
    | {"compress", "decompress"}
)
IGNORED_PARAMS = frozenset(
    {
        "session_id",
        "session_timeout",
        "session_check",
        "wait_end_of_query",
        "buffer_size",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "client_protocol_version",
        "quota_key",
        "role",
        "add_http_cors_header",
        "enable_http_compression",
        "http_zlib_compression_level",
        "http_response_buffer_size",
        "http_wait_end_of_query",
        "http_native_compression_disable_checksumming_on_decompress",
        "stacktrace",
    }
)
PARAM_PREFIX = "param_"

# Settings a client may change for its own query: how results look, and what
# happens when a cap is reached. Nothing here reads or writes files or widens a cap.
CHANGEABLE = frozenset(
    {
        "result_overflow_mode",
        "timeout_overflow_mode",
        "extremes",
        "session_timezone",
        "date_time_output_format",
        "date_time_input_format",
        "cast_string_to_dynamic_use_inference",
        "format_csv_delimiter",
        "output_format_json_quote_64bit_integers",
        "output_format_json_quote_64bit_floats",
        "output_format_json_quote_decimals",
        "output_format_json_quote_denormals",
        "output_format_json_named_tuples_as_objects",
        "output_format_json_array_of_rows",
        "output_format_write_statistics",
        "output_format_pretty_max_rows",
        "output_format_pretty_color",
        "output_format_decimal_trailing_zeros",
    }
)
_ON = frozenset({"1", "true"})


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """The caps of one analyst query (see ``CLICKHOUSE_HTTP_*`` in the README)."""

    max_execution_time: float
    max_memory_usage: int
    max_result_rows: int
    max_result_bytes: int
    max_threads: int
    max_query_size: int = 256 << 10

    @classmethod
    def from_settings(cls, settings: ClickHouseHttpSettings) -> QueryLimits:
        return cls(
            max_execution_time=settings.max_execution_time,
            max_memory_usage=settings.max_memory_usage,
            max_result_rows=settings.max_result_rows,
            max_result_bytes=settings.max_result_bytes,
            max_threads=settings.max_threads,
            max_query_size=settings.max_query_size,
        )

    def caps(self) -> dict[str, float | int]:
        return {
            "max_execution_time": self.max_execution_time,
            "max_memory_usage": self.max_memory_usage,
            "max_result_rows": self.max_result_rows,
            "max_result_bytes": self.max_result_bytes,
            "max_threads": self.max_threads,
        }

    def session_settings(self, requested: Mapping[str, str], *, tag: str) -> dict[str, str]:
        """The settings of one query, ``readonly=1`` last; raises for refused requests.

        ``tag`` becomes the query's ``log_comment``, by which the endpoint finds
        its own running queries (to cancel them) and no client can set.
        """
        caps = self.caps()
        chosen: dict[str, str] = {name: _text(value) for name, value in caps.items()}
        chosen["result_overflow_mode"] = "throw"
        chosen["max_temporary_data_on_disk_size_for_query"] = str(self.max_memory_usage)
        chosen["max_query_size"] = str(self.max_query_size)
        # What the endpoint does, reported in system.settings for clients that read it
        # (clickhouse-connect asks for compression when enable_http_compression is on).
        chosen["enable_http_compression"] = "0"
        chosen["cancel_http_readonly_queries_on_client_close"] = "1"
        for name, value in requested.items():
            if name == "readonly":
                if value.strip() != "1":
                    raise ClickHouseError.readonly_setting(name)
            elif name in caps:
                chosen[name] = _within(name, value, caps[name])
            elif name in CHANGEABLE:
                chosen[name] = value
            else:
                raise ClickHouseError.readonly_setting(name)
        chosen["log_comment"] = tag
        chosen["readonly"] = "1"
        return chosen


def split_params(params: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """URL (or form) parameters as ``(query parameters, requested settings)``.

    Query parameters lose their ``param_`` prefix, as ClickHouse binds them.
    """
    bound: dict[str, str] = {}
    requested: dict[str, str] = {}
    for name, value in params.items():
        if name.startswith(PARAM_PREFIX):
            bound[name[len(PARAM_PREFIX) :]] = value
        elif name in ("compress", "decompress"):
            if value.strip().lower() in _ON:
                raise ClickHouseError(
                    NOT_IMPLEMENTED,
                    f"{name}=1 (ClickHouse's compressed transfer format) is not supported by "
                    "this endpoint; send and receive uncompressed bodies.",
                )
        elif name not in USED_PARAMS and name not in IGNORED_PARAMS:
            requested[name] = value
    return bound, requested


def _within(name: str, value: str, cap: float | int) -> str:
    try:
        number = float(value) if isinstance(cap, float) else int(value)
    except ValueError:
        raise ClickHouseError(
            BAD_ARGUMENTS, f"Cannot parse {value!r} as the value of setting {name}."
        ) from None
    if not 0 < number <= cap:
        raise ClickHouseError.setting_above_cap(name, cap)
    return _text(number)


def _text(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
