"""The request envelope every message on the requests topic carries."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]


class RequestEnvelope(BaseModel):
    """One request: who asks for which operation with which parameters.

    ``params`` is validated by the operation's own params model once the
    operation is known.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    request_id: Identifier = Field(description="Unique per tenant; responses carry it back.")
    tenant: Identifier
    operation: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$")]
    params: dict[str, Any] = Field(description="Validated by the operation's params schema.")
    created_at: Annotated[AwareDatetime, Strict(False)] = Field(
        description="When the producer created the request (RFC 3339 with offset)."
    )
    correlation_id: Identifier | None = None
    reply_to: Annotated[str, Field(min_length=1, max_length=249)] | None = Field(
        default=None, description="Topic for the response, if the worker allows it."
    )
    fields: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=64, description="Return only these top-level result fields."
    )
