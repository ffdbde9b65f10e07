"""What moves through the stages: an inbound record and the work item around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from pydantic import BaseModel

    from worker.auth.principal import Principal
    from worker.contracts.request import RequestEnvelope
    from worker.errors import WorkerError
    from worker.operations.base import Operation

#: Headers as the broker gave them: a header may have no value (None).
Headers = tuple[tuple[str, bytes | None], ...]
CacheStatus = Literal["hit", "miss", "bypass"]


class InboundRecord(NamedTuple):
    """One consumed Kafka record, as raw bytes, with its source position.

    A named tuple: one is made per record, and a frozen dataclass costs three
    times as much to build.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


class StoredOutcome(NamedTuple):
    """An answer kept for replays: what the service said, and where the request was read.

    A named tuple: one is made per answered request.
    """

    fingerprint: str
    topic: str
    partition: int
    offset: int
    status: Literal["ok", "error"]
    data: dict[str, Any] | None
    error: dict[str, Any] | None

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.topic, self.partition, self.offset)


@dataclass(slots=True)
class Work:
    """One request on its way through the stages.

    A stage fills in what it is responsible for and sets ``error`` to stop the
    request early; later stages only look at items that are still ``pending``.
    """

    record: InboundRecord
    received_at: float
    principal: Principal | None = None
    payload: dict[str, Any] | None = None
    request: RequestEnvelope | None = None
    operation: Operation[Any, Any] | None = None
    params: BaseModel | None = None
    result: dict[str, Any] | None = None
    error: WorkerError | None = None
    cache: CacheStatus = "bypass"
    #: The cache key and the canonical params it was derived from ("" if not cacheable).
    cache_key: str = ""
    cache_params: str = ""
    dead_letter: bool = False
    processed_at: float = 0.0
    #: The stored outcome this request is answered with (a replay or a redelivery).
    replayed: StoredOutcome | None = None
    #: An earlier request of the same batch with the same tenant and request id.
    duplicate_of: Work | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        """Still to be processed: no error, no result and no answer found elsewhere."""
        return (
            self.error is None
            and self.result is None
            and self.replayed is None
            and self.duplicate_of is None
        )

    def fail(self, error: WorkerError, *, dead_letter: bool = False) -> None:
        """Stop this request with ``error``; ``dead_letter`` also keeps its original bytes."""
        self.error = error
        self.dead_letter = dead_letter
