"""Service layer: each operation answers its share of the batch in one call."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from worker.errors import ClientError, ServiceError, WorkerError
from worker.flow.records import Work
from worker.operations.base import Operation


class ProcessStage:
    """Groups the pending requests by operation and dispatches each group once."""

    name = "process"

    async def __call__(self, batch: Sequence[Work]) -> None:
        groups: dict[str, list[Work]] = defaultdict(list)
        operations: dict[str, Operation[Any, Any]] = {}
        for work in batch:
            if work.pending and work.operation is not None and work.params is not None:
                groups[work.operation.name].append(work)
                operations[work.operation.name] = work.operation
        for name, works in groups.items():
            await self._dispatch(operations[name], works)

    @staticmethod
    async def _dispatch(operation: Operation[Any, Any], works: list[Work]) -> None:
        pairs = [(_tenant(work), work.params) for work in works]
        try:
            outcomes = await operation.handle(pairs)
        except WorkerError:
            raise
        except Exception as exc:
            # A failure of the operation itself is the server's, never the client's:
            # the batch is retried rather than answered.
            raise ServiceError(f"operation {operation.name} failed: {exc!r}") from exc
        if len(outcomes) != len(works):
            raise WorkerError(
                f"operation {operation.name} answered {len(outcomes)} of {len(works)} requests"
            )
        for work, outcome in zip(works, outcomes, strict=True):
            if isinstance(outcome, ClientError):
                work.fail(outcome)
            elif isinstance(outcome, BaseModel):
                work.result = outcome.model_dump(mode="json")
            else:
                raise WorkerError(f"operation {operation.name} returned {type(outcome).__name__}")


def _tenant(work: Work) -> str:
    assert work.request is not None  # noqa: S101 - validated before this stage
    return work.request.tenant
