"""The response envelope published for every consumed request."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SourcePosition(BaseModel):
    """Where the request was read: lets a producer match an answer to an unparseable message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class ErrorBody(BaseModel):
    """A machine-readable error: a stable ``code`` (see docs/errors.md) and its details."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ResponseMeta(BaseModel):
    """What the worker adds to every response."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operation: str | None
    tenant: str | None
    correlation_id: str | None
    worker_version: str
    received_at: datetime
    processed_at: datetime
    duration_ms: float = Field(ge=0)
    cache: Literal["hit", "miss", "bypass"] = Field(
        description="hit: answered from the idempotency store (a replay of an earlier request)."
    )
    source: SourcePosition
    replayed_from: SourcePosition | None = Field(
        default=None,
        description="Where the request first answered this way was read (replays, redeliveries).",
    )


class ResponseEnvelope(BaseModel):
    """``status`` is ``ok`` with ``data``, or ``error`` with ``error``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str | None = Field(description="Null only when the request could not be parsed.")
    status: Literal["ok", "error"]
    data: dict[str, Any] | None
    error: ErrorBody | None
    meta: ResponseMeta
