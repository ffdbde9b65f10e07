"""Response flow: transform, format, add metadata, route; plus the row and the dead letter.

Routing: a response goes to the request's ``reply_to`` topic only when the
request was authenticated and the topic is in ``KAFKA_REPLY_TO_ALLOWLIST``;
otherwise to the responses topic. The ``routed-to`` header names where it
went, and ``reply-to-refused`` the topic that was asked for and refused.

Dead letters keep the original bytes, except that an operation's sensitive
params are replaced with ``"[redacted]"`` when the payload parsed (the
``dlq-redacted`` header lists the paths; such a copy no longer verifies
against its signature). Unparseable bytes have nothing to redact. The
``dead_letters`` row keeps the same redacted bytes.

A ``requests`` row holds the validated params and the answered data as JSON,
with sensitive fields left out or encrypted as the operation declares
(:class:`~worker.operations.storage.RowValues`); ``cache_params`` is kept only
for operations without sensitive params.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from worker import __version__
from worker.auth import signing
from worker.auth.authenticators import header
from worker.errors import WorkerError
from worker.flow.output import (
    DEAD_LETTER_PAYLOAD_MAX,
    BatchOutput,
    DeadLetterRow,
    OutboundMessage,
    PartitionRows,
    RequestRow,
)
from worker.flow.records import InboundRecord, Work
from worker.operations.registry import OperationRegistry
from worker.operations.sensitive import redact, sensitive_fields
from worker.operations.storage import RowValues

#: Dead letters of one batch logged one by one; the rest are counted in one line.
LOGGED_DEAD_LETTERS = 20

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: Longer canonical params are not stored with the row (warming cannot recompute those keys).
_MAX_STORED_PARAMS = 4096


def _claimed(payload: dict[str, Any] | None, name: str) -> str | None:
    """A field of an unvalidated payload, only if it looks like an identifier."""
    if payload is None:
        return None
    value = payload.get(name)
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def _claimed_header(record: InboundRecord, name: str) -> str | None:
    text = header(record, name)
    return text if text and _ID.fullmatch(text) else None


@functools.lru_cache(maxsize=64)
def _utc(seconds: float) -> datetime:
    # A batch shares its received and processed times: four calls per request, a
    # handful of distinct values per batch.
    return datetime.fromtimestamp(seconds, UTC)


def redact_payload(
    payload: dict[str, Any] | None, registry: OperationRegistry | None
) -> tuple[dict[str, Any] | None, list[str]]:
    """``payload`` with its operation's sensitive params redacted, and the paths redacted."""
    if payload is None or registry is None:
        return None, []
    name = payload.get("operation")
    params = payload.get("params")
    operation = registry.get(name) if isinstance(name, str) else None
    if operation is None or not isinstance(params, dict):
        return None, []
    cleaned, replaced = redact(params, sensitive_fields(operation.params_model))
    if not replaced:
        return None, []
    return {**payload, "params": cleaned}, [f"params.{name}" for name in replaced]


def _dead_letter_row(work: Work, row: RequestRow, letter: OutboundMessage) -> DeadLetterRow:
    """The ``dead_letters`` row of a rejected record; ids are those its ``requests`` row claims.

    Its payload is the dead letter's (sensitive params redacted); its size the original's.
    """
    record = work.record
    error = work.error
    value = record.value or b""
    return (
        _utc(work.received_at),
        error.code if error is not None else "unknown",
        error.message[:1024] if error is not None else "",
        row[0] if not row[0].startswith("@") else "",
        row[1],
        row[2],
        record.topic,
        record.partition,
        record.offset,
        record.key or b"",
        letter.value[:DEAD_LETTER_PAYLOAD_MAX],
        len(value),
    )


class Responder:
    """Turns a processed batch into responses, dead letters and ``requests`` rows."""

    name = "respond"

    def __init__(
        self,
        *,
        responses_topic: str,
        dead_letter_topic: str,
        reply_to_allowlist: frozenset[str] = frozenset(),
        registry: OperationRegistry | None = None,
        row_values: RowValues | None = None,
    ) -> None:
        self._responses_topic = responses_topic
        self._dead_letter_topic = dead_letter_topic
        self._reply_to_allowlist = reply_to_allowlist
        self._registry = registry
        # Without a cipher, fields declared "encrypt" are left out of rows.
        self._row_values = row_values or RowValues()

    def __call__(self, batch: Sequence[Work]) -> BatchOutput:
        output = BatchOutput()
        by_partition: dict[tuple[str, int], PartitionRows] = {}
        now = time.time()
        for work in batch:
            work.processed_at = now
            response, row = self._respond(work)
            output.responses.append(response)
            record = work.record
            slot = by_partition.get((record.topic, record.partition))
            if slot is None:
                slot = by_partition[(record.topic, record.partition)] = PartitionRows(
                    record.topic, record.partition
                )
                output.rows.append(slot)
            slot.add(row, record.offset)
            if work.dead_letter:
                letter = self._dead_letter(work)
                output.dead_letters.append(letter)
                slot.add_dead_letter(_dead_letter_row(work, row, letter), record.offset)
                if len(output.dead_letters) <= LOGGED_DEAD_LETTERS:
                    _log_dead_letter(work)
        if len(output.dead_letters) > LOGGED_DEAD_LETTERS:
            log.info(
                "%d more dead letters in this batch (see the dead-letter topic)",
                len(output.dead_letters) - LOGGED_DEAD_LETTERS,
            )
        return output

    def dead_letter_batch(
        self, records: Sequence[InboundRecord], error: WorkerError, received_at: float
    ) -> BatchOutput:
        """A batch given up on after a server error: dead letters and rows, no responses.

        Each row has ``status = "dead_letter"`` and the error's code, so the
        table still holds one row per consumed record.
        """
        output = BatchOutput()
        by_partition: dict[tuple[str, int], PartitionRows] = {}
        now = time.time()
        for record in records:
            work = Work(record=record, received_at=received_at, processed_at=now)
            work.error = error
            _, row = self._respond(work, status="dead_letter")
            output.dead_letters.append(self.dead_letter(record, error))
            slot = by_partition.get((record.topic, record.partition))
            if slot is None:
                slot = by_partition[(record.topic, record.partition)] = PartitionRows(
                    record.topic, record.partition
                )
                output.rows.append(slot)
            slot.add(row, record.offset)
        return output

    def _respond(
        self, work: Work, *, status: str | None = None
    ) -> tuple[OutboundMessage, RequestRow]:
        record = work.record
        request = work.request
        if request is not None:
            request_id: str | None = request.request_id
            tenant: str | None = request.tenant
            operation: str | None = request.operation
            correlation_id = request.correlation_id
            created_at = request.created_at
        else:
            request_id = _claimed(work.payload, "request_id") or _claimed_header(
                record, signing.REQUEST_ID_HEADER
            )
            tenant = _claimed(work.payload, "tenant")
            operation = _claimed(work.payload, "operation")
            correlation_id = _claimed(work.payload, "correlation_id")
            created_at = _utc(work.received_at)
        duration_ms = max(0.0, (work.processed_at - work.received_at) * 1000.0)
        replayed = work.replayed
        if replayed is not None:
            data = replayed.data
            error_body = replayed.error
        else:
            data = work.result
            error_body = None if work.error is None else work.error.to_dict()
        if data is not None and request is not None and request.fields is not None:
            data = {name: data[name] for name in request.fields if name in data}
        status = status or ("ok" if error_body is None else "error")
        error_code = "" if error_body is None else str(error_body.get("code", ""))
        if error_body is not None:
            self._log_rejection(work, request_id, error_code)
        source = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        body = {
            "request_id": request_id,
            "status": status,
            "data": data,
            "error": error_body,
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
                "replayed_from": None
                if replayed is None
                else {
                    "topic": replayed.topic,
                    "partition": replayed.partition,
                    "offset": replayed.offset,
                },
            },
        }
        headers: list[tuple[str, bytes]] = [("status", status.encode())]
        if request_id is not None:
            headers.append(("request-id", request_id.encode()))
        if correlation_id is not None:
            headers.append(("correlation-id", correlation_id.encode()))
        topic = self._responses_topic
        if request is not None and request.reply_to is not None:
            if work.principal is not None and request.reply_to in self._reply_to_allowlist:
                topic = request.reply_to
            else:
                headers.append(("reply-to-refused", request.reply_to.encode()))
        headers.append(("routed-to", topic.encode()))
        key = request_id.encode() if request_id is not None else record.key
        message = OutboundMessage(
            topic,
            key,
            orjson.dumps(body, option=orjson.OPT_UTC_Z),
            tuple(headers),
            record.partition,
        )
        cache_params, params_text, result_text = self._stored(
            work, data if error_body is None else None
        )
        row: RequestRow = (
            request_id or f"@{record.topic}:{record.partition}:{record.offset}",
            tenant or "",
            operation or "",
            status,
            error_code,
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
            cache_params,
            params_text,
            result_text,
        )
        return message, row

    def _stored(self, work: Work, data: dict[str, Any] | None) -> tuple[str, str, str]:
        """The row's ``cache_params``, ``params`` and ``result``, sensitive fields handled."""
        operation = work.operation
        if operation is None:
            return "", "", ""
        values = self._row_values
        # The cache's canonical params are the params in clear: kept only without secrets.
        cache_params = work.cache_params if values.plan(operation).params.clear else ""
        if len(cache_params) > _MAX_STORED_PARAMS:
            cache_params = ""
        return (
            cache_params,
            values.params(operation, work.params, work.cache_params),
            values.result(operation, data),
        )

    def _log_rejection(self, work: Work, request_id: str | None, code: str) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        payload, _ = redact_payload(work.payload, self._registry)
        params = (payload or work.payload or {}).get("params")
        log.debug("request %s answered %s; params %s", request_id, code, params)

    def _dead_letter(self, work: Work) -> OutboundMessage:
        error = work.error
        return self.dead_letter(work.record, error, payload=work.payload)

    def dead_letter(
        self,
        record: InboundRecord,
        error: WorkerError | None,
        *,
        payload: dict[str, Any] | None = None,
        answered: bool = False,
    ) -> OutboundMessage:
        """``record`` for the dead-letter topic, with the reason in ``dlq-*`` headers.

        ``payload`` (the parsed value, if it parsed) is used to redact sensitive
        params; without it the value is parsed here, for the same purpose.
        ``answered``: the request's response was published before what failed
        (``dlq-answered: true``); replaying it stores its row and answers it again
        from the idempotency store.
        """
        reason = error.code if error is not None else "unknown"
        message = error.message if error is not None else ""
        value = record.value or b""
        if payload is None and value:
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                parsed = None
            payload = parsed if isinstance(parsed, dict) else None
        cleaned, redacted = redact_payload(payload, self._registry)
        if cleaned is not None:
            value = orjson.dumps(cleaned)
        headers = (
            *record.headers,
            ("dlq-reason", reason.encode()),
            ("dlq-message", message[:1024].encode("utf-8", "replace")),
            ("dlq-source-topic", record.topic.encode()),
            ("dlq-source-partition", str(record.partition).encode()),
            ("dlq-source-offset", str(record.offset).encode()),
            ("dlq-worker-version", __version__.encode()),
            ("dlq-redacted", ",".join(redacted).encode()),
        )
        if answered:
            headers = (*headers, ("dlq-answered", b"true"))
        return OutboundMessage(
            self._dead_letter_topic, record.key, value, headers, record.partition
        )


def _log_dead_letter(work: Work) -> None:
    record = work.record
    error = work.error
    code = error.code if error is not None else "unknown"
    log.info(
        "dead-lettered %s[%d]@%d: %s",
        record.topic,
        record.partition,
        record.offset,
        code,
        extra={
            "request_id": _claimed(work.payload, "request_id"),
            "correlation_id": _claimed(work.payload, "correlation_id"),
            "tenant": _claimed(work.payload, "tenant"),
            "error_code": code,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        },
    )
