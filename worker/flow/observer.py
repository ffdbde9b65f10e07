"""The observer port: what the flow reports about each batch, for metrics.

The flow calls it once per batch and step, never per request; what a report
becomes (Prometheus metrics in the worker, a list in the tests) is the
implementation's business. :class:`MemoryObserver` is the in-memory one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from worker.errors import ServerError
from worker.flow.output import BatchOutput
from worker.flow.records import InboundRecord


class FlowObserver(Protocol):
    """Receives the facts of every batch as it goes through the flow."""

    def received(self, records: Sequence[InboundRecord]) -> None:
        """A batch was taken from the feed."""

    def stage_finished(self, stage: str, size: int, seconds: float) -> None:
        """A stage (or the persist and publish steps) finished a batch of ``size``."""

    def retried(self, step: str, error: ServerError) -> None:
        """A step of a batch failed with ``error`` and will be tried again."""

    def delivered(
        self,
        records: Sequence[InboundRecord],
        output: BatchOutput,
        *,
        stored_at: float,
        published_at: float,
    ) -> None:
        """Rows were confirmed at ``stored_at``, messages at ``published_at`` (epoch seconds)."""


class NullObserver:
    """Reports nowhere."""

    def received(self, records: Sequence[InboundRecord]) -> None:
        return None

    def stage_finished(self, stage: str, size: int, seconds: float) -> None:
        return None

    def retried(self, step: str, error: ServerError) -> None:
        return None

    def delivered(
        self,
        records: Sequence[InboundRecord],
        output: BatchOutput,
        *,
        stored_at: float,
        published_at: float,
    ) -> None:
        return None


@dataclass
class MemoryObserver:
    """Keeps every report, for tests and the broker-free harness."""

    received_batches: list[int] = field(default_factory=list)
    stages: list[tuple[str, int]] = field(default_factory=list)
    retries: list[tuple[str, str]] = field(default_factory=list)
    deliveries: list[BatchOutput] = field(default_factory=list)

    def received(self, records: Sequence[InboundRecord]) -> None:
        self.received_batches.append(len(records))

    def stage_finished(self, stage: str, size: int, seconds: float) -> None:
        self.stages.append((stage, size))

    def retried(self, step: str, error: ServerError) -> None:
        self.retries.append((step, error.code))

    def delivered(
        self,
        records: Sequence[InboundRecord],
        output: BatchOutput,
        *,
        stored_at: float,
        published_at: float,
    ) -> None:
        self.deliveries.append(output)
