"""The pipeline: stages in request-flow order, then the responder. Knows nothing of Kafka."""

from __future__ import annotations

import time
from collections.abc import Sequence

from worker.flow.observer import FlowObserver, NullObserver
from worker.flow.output import BatchOutput
from worker.flow.records import InboundRecord, Work
from worker.flow.respond import Responder
from worker.flow.stage import Stage


class Pipeline:
    """Runs a batch of records through every stage and shapes the output."""

    def __init__(
        self,
        stages: Sequence[Stage],
        responder: Responder,
        observer: FlowObserver | None = None,
    ) -> None:
        self.stages = tuple(stages)
        self.responder = responder
        self.observer: FlowObserver = observer or NullObserver()

    async def run(self, records: Sequence[InboundRecord]) -> BatchOutput:
        """Process ``records``; every record yields exactly one response and one row."""
        received_at = time.time()
        batch = [Work(record=record, received_at=received_at) for record in records]
        finished = self.observer.stage_finished
        size = len(batch)
        for stage in self.stages:
            started = time.perf_counter()
            await stage(batch)
            finished(stage.name, size, time.perf_counter() - started)
        started = time.perf_counter()
        output = self.responder(batch)
        finished(self.responder.name, size, time.perf_counter() - started)
        return output
