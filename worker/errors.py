"""The one exception tree of the worker, with stable error codes.

Client errors are answered to the requester (and never retried); server errors
are retried with backoff by the stage that owns the external system.

    WorkerError                      internal_error
    ├── ClientError                  (answered, never retried)
    │   ├── PayloadTooLargeError     payload_too_large
    │   ├── InvalidPayloadError      invalid_payload      bytes are not a UTF-8 JSON object
    │   │   └── PayloadTooDeepError  payload_too_deep
    │   ├── ValidationFailedError    validation_failed    carries the failing field paths
    │   ├── UnknownOperationError    unknown_operation
    │   ├── RateLimitedError         rate_limited         carries retry_after_ms
    │   └── NotFoundError            not_found
    ├── ServerError                  (retriable)
    │   ├── ServiceError             service_failed
    │   ├── DatabaseError            database_unavailable
    │   ├── RateLimiterError         rate_limiter_unavailable
    │   ├── PublishError             publish_failed
    │   └── CacheError               cache_unavailable    the cache changelog refused a removal
    └── ConfigurationError           configuration_invalid (start-up only)

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


class ServerError(WorkerError):
    """Something the worker depends on failed; the work is retried, not answered."""

    code = "server_error"
    retriable = True


class ServiceError(ServerError):
    """An operation failed for a reason that is not the request's."""

    code = "service_failed"


class DatabaseError(ServerError):
    code = "database_unavailable"


class RateLimiterError(ServerError):
    code = "rate_limiter_unavailable"


class PublishError(ServerError):
    code = "publish_failed"


class CacheError(ServerError):
    """The cache's changelog did not confirm a removal; the invalidation or sweep is retried."""

    code = "cache_unavailable"


class ConfigurationError(WorkerError):
    """The worker cannot start as configured. Operator action: fix the named setting."""

    code = "configuration_invalid"
