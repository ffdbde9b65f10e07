"""Invalidation messages: what to remove from the cache, and how a message reaches every partition.

An entry lives in the partition that owns its key, and a tag, an operation or
a tenant spans all partitions. The invalidations topic is partitioned like the
requests topic, so the owner of partition p is the one to apply a message of
partition p. A message published once (``scope: "all"``, the default) is
applied where it lands and copied by that worker to every other partition
with ``scope: "partition"``; copies are applied where they land and never
copied again. Publishers therefore send one message, keyed as they like.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from worker.errors import ValidationFailedError
from worker.flow.validate import field_errors

InvalidationKind = Literal["key", "tag", "operation", "tenant"]


class Invalidation(BaseModel):
    """Remove cache entries by exact ``key``, by ``tag``, by ``operation`` or by ``tenant``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: InvalidationKind
    value: Annotated[str, Field(min_length=1, max_length=512)] = Field(
        description="The cache key, tag (e.g. product:SKU-1), operation name or tenant."
    )
    scope: Literal["all", "partition"] = Field(
        default="all",
        description="all: apply everywhere (the worker copies it to every partition); "
        "partition: a copy, apply only in the partition it was read from.",
    )
    reason: Annotated[str, Field(max_length=256)] | None = None

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump(exclude_none=True))

    def copy_for_partitions(self) -> Invalidation:
        """The copy sent to the other partitions."""
        return self.model_copy(update={"scope": "partition"})

    @classmethod
    def decode(cls, raw: bytes | None) -> Invalidation:
        """Parse a message value; raises :class:`ValidationFailedError` with the failing paths."""
        if raw is None:
            raise ValidationFailedError(
                [{"path": "", "message": "empty message", "type": "missing"}]
            )
        try:
            return cls.model_validate_json(raw)
        except pydantic.ValidationError as exc:
            raise ValidationFailedError(field_errors(exc)) from exc
