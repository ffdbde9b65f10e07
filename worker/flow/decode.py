"""Client layer: raw bytes to a JSON object, within limits, never pickle.

Size and depth are checked on the bytes, before parsing; string and array
lengths by an iterative walk of the parsed value (no recursion, so a hostile
document cannot exhaust the stack), skipped when the byte counts already
prove no string or array can be too long.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from worker.errors import (
    ArrayTooLongError,
    InvalidPayloadError,
    PayloadTooDeepError,
    PayloadTooLargeError,
    StringTooLongError,
)
from worker.flow.records import Work
from worker.settings import LimitsSettings

# A backslash pair first, so that an escaped quote never toggles the string state.
_STRUCTURAL = re.compile(rb'\\.|["\[\]{}]', re.DOTALL)
_OPENERS = frozenset((ord("["), ord("{")))


def exceeds_depth(data: bytes, limit: int) -> bool:
    """Whether JSON ``data`` nests deeper than ``limit``, by a scan that never recurses.

    Counting the openers first makes the common case a pair of C-speed scans.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    in_string = False
    for match in _STRUCTURAL.finditer(data):
        token = match.group()
        if len(token) == 2:  # an escape pair: only meaningful inside strings
            continue
        if token == b'"':
            in_string = not in_string
        elif not in_string:
            if token[0] in _OPENERS:
                depth += 1
                if depth > limit:
                    return True
            else:
                depth -= 1
    return False


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def find_too_long(
    value: Any, max_string: int, max_array: int
) -> StringTooLongError | ArrayTooLongError | None:
    """The first string or array of ``value`` over its limit, walking with an explicit stack."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if len(item) > max_string:
                return StringTooLongError(path, len(item), max_string)
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = _join(path, key)
                if len(key) > max_string:
                    return StringTooLongError(child_path, len(key), max_string)
                stack.append((child, child_path))
        elif isinstance(item, list):
            if len(item) > max_array:
                return ArrayTooLongError(path, len(item), max_array)
            stack.extend((child, _join(path, i)) for i, child in enumerate(item))
    return None


class DecodeStage:
    """Checks size and depth before parsing, parses with orjson, then string and array lengths."""

    name = "decode"

    def __init__(self, limits: LimitsSettings) -> None:
        self._max_bytes = limits.max_message_bytes
        self._max_depth = limits.max_json_depth
        self._max_string = limits.max_string_length
        self._max_array = limits.max_array_length

    async def __call__(self, batch: Sequence[Work]) -> None:
        for work in batch:
            if work.pending:
                self._decode(work)

    def _decode(self, work: Work) -> None:
        data = work.record.value
        if data is None:
            work.fail(InvalidPayloadError("message has no value (tombstone)"), dead_letter=True)
            return
        if len(data) > self._max_bytes:
            work.fail(PayloadTooLargeError(len(data), self._max_bytes), dead_letter=True)
            return
        if exceeds_depth(data, self._max_depth):
            work.fail(PayloadTooDeepError(self._max_depth), dead_letter=True)
            return
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            work.fail(
                InvalidPayloadError(f"not valid UTF-8 JSON: {exc}", details={"position": exc.pos}),
                dead_letter=True,
            )
            return
        if not isinstance(payload, dict):
            work.fail(
                InvalidPayloadError(
                    f"expected a JSON object, got {type(payload).__name__}",
                    details={"path": ""},
                ),
                dead_letter=True,
            )
            return
        # A string has at most as many characters as the message has bytes, and an
        # array at most one more item than the message has commas.
        if len(data) > self._max_string or data.count(b",") >= self._max_array:
            too_long = find_too_long(payload, self._max_string, self._max_array)
            if too_long is not None:
                work.payload = payload
                work.fail(too_long, dead_letter=True)
                return
        work.payload = payload
