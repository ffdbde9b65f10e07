"""The one exception tree of the worker, with stable error codes.

Client errors are answered to the requester (and never retried); server errors
are retried with backoff by the stage that owns the external system.

    WorkerError                      internal_error
    ├── ClientError                  (answered, never retried)
    │   ├── PayloadTooLargeError     payload_too_large
    │   ├── InvalidPayloadError      invalid_payload      bytes are not a UTF-8 JSON object
    │   │   ├── PayloadTooDeepError  payload_too_deep
    │   │   ├── StringTooLongError   string_too_long      carries the path
    │   │   └── ArrayTooLongError    array_too_long       carries the path
    │   ├── ValidationFailedError    validation_failed    carries the failing field paths
    │   ├── UnknownOperationError    unknown_operation
    │   ├── UnauthenticatedError     unauthenticated      no valid credential
    │   ├── ForbiddenError           forbidden            other tenant, or a scope missing
    │   ├── RateLimitedError         rate_limited         carries retry_after_ms
    │   ├── NotFoundError            not_found
    │   └── ConflictError            conflict             request id reused for another request
    ├── ServerError                  (retried, then dead-lettered with the code)
    │   ├── ServiceError             service_failed
    │   ├── DatabaseError            database_unavailable
    │   │   └── DatabaseOverloadedError database_overloaded carries the ClickHouse code
    │   ├── CacheError               cache_unavailable    credentials / idempotency store, or
    │   │                                                  the result cache's changelog
    │   ├── RateLimiterError         rate_limiter_unavailable
    │   ├── SystemFailureError       system_failed        an unexpected exception (a bug)
    │   └── PublishError             publish_failed
    ├── ConfigurationError           configuration_invalid (start-up only)
    └── ClickHouseError              clickhouse_error     analyst endpoint only, answered in
                                                          ClickHouse's format (clickhouse/endpoint)

The ``code`` strings are part of the public contract (responses, ClickHouse
rows, dead-letter headers) and are listed in ``docs/errors.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class WorkerError(Exception):
    """Root of every error the worker raises on purpose."""

    code: ClassVar[str] = "internal_error"
    retriable: ClassVar[bool] = False

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """The error as it appears in a response envelope."""
        return {"code": self.code, "message": self.message, "details": self.details}


class ClientError(WorkerError):
    """The request is wrong; the requester is told why."""

    code = "client_error"


class PayloadTooLargeError(ClientError):
    code = "payload_too_large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"message of {size} bytes exceeds the limit of {limit} bytes",
            details={"size": size, "limit": limit},
        )


class InvalidPayloadError(ClientError):
    """The bytes are not a UTF-8 JSON object."""

    code = "invalid_payload"


class PayloadTooDeepError(InvalidPayloadError):
    code = "payload_too_deep"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"JSON nesting exceeds the limit of {limit} levels", details={"limit": limit}
        )


class StringTooLongError(InvalidPayloadError):
    code = "string_too_long"

    def __init__(self, path: str, length: int, limit: int) -> None:
        super().__init__(
            f"{path or '<root>'}: string of {length} characters exceeds the limit of {limit}",
            details={"path": path, "length": length, "limit": limit},
        )


class ArrayTooLongError(InvalidPayloadError):
    code = "array_too_long"

    def __init__(self, path: str, length: int, limit: int) -> None:
        super().__init__(
            f"{path or '<root>'}: array of {length} items exceeds the limit of {limit}",
            details={"path": path, "length": length, "limit": limit},
        )


class ValidationFailedError(ClientError):
    """A field is missing, unknown or of the wrong type; ``details.errors`` names each path."""

    code = "validation_failed"

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        first = errors[0] if errors else {"path": "", "message": "invalid"}
        super().__init__(
            f"{first['path'] or '<root>'}: {first['message']}",
            details={"errors": [dict(error) for error in errors]},
        )
        self.errors = [dict(error) for error in errors]

    @property
    def path(self) -> str:
        """The dotted path of the first failing field."""
        return str(self.errors[0]["path"]) if self.errors else ""


class UnknownOperationError(ClientError):
    code = "unknown_operation"

    def __init__(self, operation: str, known: Sequence[str]) -> None:
        super().__init__(
            f"unknown operation {operation!r}",
            details={"path": "operation", "operation": operation, "known": sorted(known)},
        )


class UnauthenticatedError(ClientError):
    """No credential, or one that does not verify (signature, expiry, revocation, clock skew).

    The message says which check failed, never a secret; ``details.reason`` is a
    stable word for programs (``missing``, ``unknown_key``, ``revoked``,
    ``bad_signature``, ``stale``, ``malformed``, ``invalid_token``, ...).
    """

    code = "unauthenticated"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason


class ForbiddenError(ClientError):
    """The credential is valid but may not do this (another tenant, a missing scope)."""

    code = "forbidden"


class RateLimitedError(ClientError):
    code = "rate_limited"

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__(
            f"rate limit exceeded, retry after {retry_after_ms} ms",
            details={"retry_after_ms": retry_after_ms},
        )
        self.retry_after_ms = retry_after_ms


class NotFoundError(ClientError):
    code = "not_found"


class ConflictError(ClientError):
    """The request id was already used by this tenant for a different request."""

    code = "conflict"


class ServerError(WorkerError):
    """Something the worker depends on failed; the work is retried, not answered."""

    code = "server_error"
    retriable = True


class ServiceError(ServerError):
    """An operation failed for a reason that is not the request's."""

    code = "service_failed"


class DatabaseError(ServerError):
    """ClickHouse could not be reached or refused a statement; the insert is retried."""

    code = "database_unavailable"


class CacheError(ServerError):
    """A cache could not do its part; the stage that owns it retries.

    Redis, as the credential or idempotency store, could not be reached; or the
    result cache's changelog did not confirm a removal (an invalidation or a
    sweep, which is retried while the cache keeps serving).
    """

    code = "cache_unavailable"


class DatabaseOverloadedError(DatabaseError):
    """ClickHouse refused an insert because it is overloaded (too many parts, memory, ...).

    The sink pauses between inserts while this repeats, and ``shrink`` tells it
    to make later inserts smaller. Operator action: if it persists, look at the
    server's merges (``system.merges``) and insert rate.
    """

    code = "database_overloaded"

    def __init__(self, clickhouse_code: int, name: str, message: str, *, shrink: bool) -> None:
        super().__init__(
            f"ClickHouse is overloaded ({name}): {message}",
            details={"clickhouse_code": clickhouse_code, "name": name},
        )
        self.clickhouse_code = clickhouse_code
        self.name = name
        self.shrink = shrink


class RateLimiterError(ServerError):
    code = "rate_limiter_unavailable"


class SystemFailureError(ServerError):
    """An unexpected failure inside the worker or its data (a bug, a corrupt stored record).

    Retried like an outage, then dead-lettered. Operator action: read the log line
    with the dead-lettered batch; fix the record or report the bug.
    """

    code = "system_failed"


class PublishError(ServerError):
    """The broker did not confirm some messages of a publish.

    ``undelivered`` holds the positions, in the published sequence, of the
    messages it did not confirm (the others landed); None when that is not
    known, and every message is to be sent again.
    """

    code = "publish_failed"

    def __init__(self, message: str, *, undelivered: Sequence[int] | None = None) -> None:
        super().__init__(message)
        self.undelivered = None if undelivered is None else tuple(undelivered)


class ConfigurationError(WorkerError):
    """The worker cannot start as configured. Operator action: fix the named setting."""

    code = "configuration_invalid"
