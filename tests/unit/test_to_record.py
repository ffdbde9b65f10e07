"""A consumed message as the pipeline's raw record."""

from __future__ import annotations

from types import SimpleNamespace

from worker.agents import to_record
from worker.flow.records import InboundRecord


def _message(**fields: object) -> SimpleNamespace:
    base = {
        "topic": "requests",
        "partition": 2,
        "offset": 41,
        "timestamp": 1_700_000_000.25,
        "key": b"k",
        "value": b"{}",
        "headers": [("x-key-id", b"acme-1")],
    }
    return SimpleNamespace(**{**base, **fields})


def test_a_message_keeps_its_position_bytes_and_millisecond_timestamp() -> None:
    assert to_record(_message()) == InboundRecord(
        "requests", 2, 41, 1_700_000_000_250, b"k", b"{}", (("x-key-id", b"acme-1"),)
    )


def test_headers_are_kept_as_the_broker_gave_them() -> None:
    given = (("a", None), ("c", b"y"))
    record = to_record(_message(headers=given))
    assert record.headers is given
    assert to_record(_message(headers=[("a", None), ("c", b"y")])).headers == given
    assert to_record(_message(headers={"d": b"z"})).headers == (("d", b"z"),)
    assert to_record(_message(headers=None)).headers == ()
    assert to_record(_message(headers=[])).headers == ()


def test_a_message_without_a_timestamp_has_none() -> None:
    assert to_record(_message(timestamp=None)).timestamp_ms is None
