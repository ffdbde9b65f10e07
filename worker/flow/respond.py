"""Response flow: transform, format, add metadata, route; plus the row and the dead letter."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from worker import __version__
from worker.flow.output import BatchOutput, OutboundMessage, PartitionRows, RequestRow
from worker.flow.records import Work

_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: Longer canonical params are not stored with the row (warming cannot recompute those keys).
_MAX_STORED_PARAMS = 4096


def _claimed(payload: dict[str, Any] | None, name: str) -> str | None:
    """A field of an unvalidated payload, only if it looks like an identifier."""
    if payload is None:
        return None
    value = payload.get(name)
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Responder:
    """Turns a processed batch into responses, dead letters and ``requests`` rows."""

    name = "respond"

    def __init__(self, *, responses_topic: str, dead_letter_topic: str) -> None:
        self._responses_topic = responses_topic
        self._dead_letter_topic = dead_letter_topic

    def __call__(self, batch: Sequence[Work]) -> BatchOutput:
        output = BatchOutput()
        by_partition: dict[tuple[str, int], PartitionRows] = {}
        now = time.time()
        for work in batch:
            work.processed_at = now
            response, row = self._respond(work)
            output.responses.append(response)
            if work.dead_letter:
                output.dead_letters.append(self._dead_letter(work))
            record = work.record
            slot = by_partition.get((record.topic, record.partition))
            if slot is None:
                slot = by_partition[(record.topic, record.partition)] = PartitionRows(
                    record.topic, record.partition
                )
                output.rows.append(slot)
            slot.add(row, record.offset)
        return output

    def _respond(self, work: Work) -> tuple[OutboundMessage, RequestRow]:
        record = work.record
        request = work.request
        if request is not None:
            request_id: str | None = request.request_id
            tenant: str | None = request.tenant
            operation: str | None = request.operation
            correlation_id = request.correlation_id
            created_at = request.created_at
        else:
            request_id = _claimed(work.payload, "request_id")
            tenant = _claimed(work.payload, "tenant")
            operation = _claimed(work.payload, "operation")
            correlation_id = _claimed(work.payload, "correlation_id")
            created_at = _utc(work.received_at)
        duration_ms = max(0.0, (work.processed_at - work.received_at) * 1000.0)
        data = work.result
        if data is not None and request is not None and request.fields is not None:
            data = {name: data[name] for name in request.fields if name in data}
        error = work.error
        status = "ok" if error is None else "error"
        source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        body = {
            "request_id": request_id,
            "status": status,
            "data": data,
            "error": None if error is None else error.to_dict(),
            "meta": {
                "operation": operation,
                "tenant": tenant,
                "correlation_id": correlation_id,
                "worker_version": __version__,
                "received_at": _utc(work.received_at),
                "processed_at": _utc(work.processed_at),
                "duration_ms": round(duration_ms, 3),
                "cache": work.cache,
                "source": source,
            },
        }
        headers: list[tuple[str, bytes]] = [("status", status.encode())]
        if request_id is not None:
            headers.append(("request-id", request_id.encode()))
        if correlation_id is not None:
            headers.append(("correlation-id", correlation_id.encode()))
        key = request_id.encode() if request_id is not None else record.key
        message = OutboundMessage(
            self._responses_topic, key, orjson.dumps(body, option=orjson.OPT_UTC_Z), tuple(headers)
        )
        row: RequestRow = (
            request_id or f"@{record.topic}:{record.partition}:{record.offset}",
            tenant or "",
            operation or "",
            status,
            "" if error is None else error.code,
            correlation_id or "",
            created_at,
            _utc(work.received_at),
            _utc(work.processed_at),
            duration_ms,
            work.cache,
            record.topic,
            record.partition,
            record.offset,
            work.cache_key,
            work.cache_params if len(work.cache_params) <= _MAX_STORED_PARAMS else "",
        )
        return message, row

    def _dead_letter(self, work: Work) -> OutboundMessage:
        record = work.record
        error = work.error
        reason = error.code if error is not None else "unknown"
        message = error.message if error is not None else ""
        headers = (
            *record.headers,
            ("dlq-reason", reason.encode()),
            ("dlq-message", message[:1024].encode("utf-8", "replace")),
            ("dlq-source-topic", record.topic.encode()),
            ("dlq-source-partition", str(record.partition).encode()),
            ("dlq-source-offset", str(record.offset).encode()),
            ("dlq-worker-version", __version__.encode()),
        )
        return OutboundMessage(self._dead_letter_topic, record.key, record.value or b"", headers)
