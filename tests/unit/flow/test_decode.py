"""The decode stage: size and depth limits before parsing, then a JSON object or a rejection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import (
    ArrayTooLongError,
    InvalidPayloadError,
    PayloadTooDeepError,
    PayloadTooLargeError,
    StringTooLongError,
)
from worker.flow.decode import DecodeStage, exceeds_depth, find_too_long
from worker.flow.records import InboundRecord, Work
from worker.settings import LimitsSettings

MakeRecord = Callable[..., InboundRecord]


def decode(value: bytes | None, make_record: MakeRecord, **limits: int) -> Work:
    stage = DecodeStage(
        LimitsSettings(**{"max_message_bytes": 1024, "max_json_depth": 8, **limits})
    )
    work = Work(record=make_record(value), received_at=0.0)
    asyncio.run(stage([work]))
    return work


def reference_depth(value: Any) -> int:
    """Nesting depth by recursion: a scalar is 0, a container one more than its deepest child."""
    if isinstance(value, list):
        return 1 + max((reference_depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((reference_depth(item) for item in value.values()), default=0)
    return 0


def nested(depth: int) -> bytes:
    """``depth`` levels of alternating objects and arrays around a scalar."""
    text = "1"
    for level in range(depth):
        text = f'{{"k":{text}}}' if level % 2 else f"[{text}]"
    return text.encode()


# Strings rich in the characters that could fool a scanner (no lone surrogates: not UTF-8).
tricky_text = st.text(
    alphabet=st.sampled_from('[]{}"\\/:,ab \u00e9\n') | st.characters(exclude_categories=["Cs"]),
    max_size=12,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4)
    ),
    max_leaves=40,
)


class TestSizeLimit:
    def test_a_message_exactly_at_the_limit_is_parsed(self, make_record: MakeRecord) -> None:
        body = b'{"pad":"' + b"x" * 100 + b'"}'
        work = decode(body, make_record, max_message_bytes=len(body))
        assert work.error is None
        assert work.payload == {"pad": "x" * 100}

    def test_one_byte_over_the_limit_is_rejected_to_the_dead_letters(
        self, make_record: MakeRecord
    ) -> None:
        body = b'{"pad":"' + b"x" * 100 + b'"}'
        work = decode(body, make_record, max_message_bytes=len(body) - 1)
        assert isinstance(work.error, PayloadTooLargeError)
        assert work.error.code == "payload_too_large"
        assert work.error.details == {"size": len(body), "limit": len(body) - 1}
        assert work.dead_letter is True
        assert work.payload is None


class TestExceedsDepth:
    @pytest.mark.parametrize("depth", [1, 2, 7, 8, 33])
    def test_exactly_at_the_limit_passes_and_one_more_level_fails(self, depth: int) -> None:
        data = nested(depth)
        assert not exceeds_depth(data, depth)
        assert exceeds_depth(data, depth - 1)

    def test_a_scalar_and_empty_containers(self) -> None:
        assert not exceeds_depth(b"1", 0)
        assert exceeds_depth(b"[]", 0)
        assert not exceeds_depth(b"[]", 1)
        assert not exceeds_depth(b"[{}, [], {}]", 2)
        assert exceeds_depth(b"[{}, [[]], {}]", 2)

    def test_brackets_inside_strings_do_not_count(self) -> None:
        data = orjson.dumps({"text": "[[[[{{{{" * 10, "more": ["]]]]}}}}"]})
        assert not exceeds_depth(data, 2)
        assert exceeds_depth(data, 1)

    def test_escaped_quotes_do_not_end_a_string(self) -> None:
        # Were \" taken as the end of the string, the brackets after it would count.
        data = orjson.dumps({"text": 'say \\"hi\\" [[[[[[ " {{{{{{'})
        assert b'\\"' in data
        assert not exceeds_depth(data, 1)

    def test_a_string_ending_in_a_backslash_closes_normally(self) -> None:
        # "\\" is an escaped backslash followed by the closing quote: the array after it counts.
        data = orjson.dumps(["x\\", [[["y"]]]])
        assert data.startswith(b'["x\\\\"')
        assert exceeds_depth(data, 3)
        assert not exceeds_depth(data, 4)

    @settings(max_examples=300, deadline=None)
    @given(value=json_values, slack=st.integers(min_value=-1, max_value=1))
    def test_agrees_with_a_recursive_depth(self, value: Any, slack: int) -> None:
        depth = reference_depth(value)
        limit = max(0, depth + slack)
        assert exceeds_depth(orjson.dumps(value), limit) == (depth > limit)

    @settings(max_examples=50, deadline=None)
    @given(value=json_values, wrap=st.integers(min_value=0, max_value=40))
    def test_agrees_on_deep_values_around_the_limit(self, value: Any, wrap: int) -> None:
        for _ in range(wrap):
            value = [value] if wrap % 2 else {"k": value}
        depth = reference_depth(value)
        data = orjson.dumps(value)
        assert not exceeds_depth(data, depth)
        assert exceeds_depth(data, depth - 1) == (depth >= 1)


class TestDecodeStage:
    def test_a_json_object_becomes_the_payload(self, make_record: MakeRecord) -> None:
        work = decode(b'{"a": [1, {"b": null}]}', make_record)
        assert work.error is None
        assert work.payload == {"a": [1, {"b": None}]}
        assert work.dead_letter is False

    def test_nesting_at_the_limit_is_parsed(self, make_record: MakeRecord) -> None:
        work = decode(b'{"a": [[[{"b": 1}]]]}', make_record, max_json_depth=5)
        assert work.error is None
        assert work.payload == {"a": [[[{"b": 1}]]]}

    def test_nesting_past_the_limit_is_rejected_before_parsing(
        self, make_record: MakeRecord
    ) -> None:
        work = decode(b'{"a": [[[{"b": 1}]]]}', make_record, max_json_depth=4)
        assert isinstance(work.error, PayloadTooDeepError)
        assert work.error.code == "payload_too_deep"
        assert work.error.details == {"limit": 4}
        assert work.dead_letter is True
        assert work.payload is None

    def test_invalid_utf8_is_an_invalid_payload(self, make_record: MakeRecord) -> None:
        work = decode(b'{"request_id": "\xff\xfe"}', make_record)
        assert isinstance(work.error, InvalidPayloadError)
        assert work.error.code == "invalid_payload"
        assert "position" in work.error.details
        assert work.dead_letter is True

    def test_malformed_json_is_an_invalid_payload(self, make_record: MakeRecord) -> None:
        work = decode(b'{"request_id": "x", oops', make_record)
        assert work.error is not None
        assert work.error.code == "invalid_payload"
        assert work.dead_letter is True

    @pytest.mark.parametrize(
        ("body", "kind"),
        [(b"[1, 2]", "list"), (b'"text"', "str"), (b"42", "int"), (b"null", "NoneType")],
    )
    def test_json_that_is_not_an_object_is_an_invalid_payload(
        self, make_record: MakeRecord, body: bytes, kind: str
    ) -> None:
        work = decode(body, make_record)
        assert work.error is not None
        assert work.error.code == "invalid_payload"
        assert kind in work.error.message
        assert work.dead_letter is True
        assert work.payload is None

    def test_a_tombstone_is_an_invalid_payload(self, make_record: MakeRecord) -> None:
        work = decode(None, make_record)
        assert work.error is not None
        assert work.error.code == "invalid_payload"
        assert "tombstone" in work.error.message
        assert work.dead_letter is True

    def test_items_already_answered_are_left_alone(self, make_record: MakeRecord) -> None:
        stage = DecodeStage(LimitsSettings(max_message_bytes=1024, max_json_depth=8))
        done = Work(record=make_record(b"not json"), received_at=0.0, result={"x": 1})
        fresh = Work(record=make_record(b'{"a": 1}'), received_at=0.0)
        asyncio.run(stage([done, fresh]))
        assert done.error is None
        assert done.payload is None
        assert fresh.payload == {"a": 1}


class TestStringAndArrayLimits:
    def test_a_string_over_the_limit_is_named_by_its_path(self, make_record: MakeRecord) -> None:
        value = orjson.dumps({"params": {"items": ["ok", "x" * 101]}})
        work = decode(value, make_record, max_string_length=100)
        assert isinstance(work.error, StringTooLongError)
        assert work.error.code == "string_too_long"
        assert work.error.details == {"path": "params.items[1]", "length": 101, "limit": 100}
        assert work.dead_letter is True

    def test_a_long_key_counts_as_a_string(self, make_record: MakeRecord) -> None:
        work = decode(orjson.dumps({"k" * 50: 1}), make_record, max_string_length=40)
        assert isinstance(work.error, StringTooLongError)

    def test_an_array_over_the_limit_is_named_by_its_path(self, make_record: MakeRecord) -> None:
        value = orjson.dumps({"params": {"list": list(range(11))}})
        work = decode(value, make_record, max_array_length=10)
        assert isinstance(work.error, ArrayTooLongError)
        assert work.error.code == "array_too_long"
        assert work.error.details["path"] == "params.list"

    def test_exactly_at_the_limits_passes(self, make_record: MakeRecord) -> None:
        value = orjson.dumps({"s": "x" * 100, "a": list(range(10))})
        work = decode(value, make_record, max_string_length=100, max_array_length=10)
        assert work.error is None
        assert work.payload is not None

    @settings(max_examples=100, deadline=None)
    @given(
        value=st.recursive(
            st.text(max_size=30) | st.integers(),
            lambda children: (
                st.lists(children, max_size=12)
                | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=40,
        )
    )
    def test_agrees_with_a_recursive_check(self, value: Any) -> None:
        def longest(item: Any) -> tuple[int, int]:
            if isinstance(item, str):
                return len(item), 0
            if isinstance(item, list):
                parts = [longest(child) for child in item]
                return max((p[0] for p in parts), default=0), max(
                    [len(item), *(p[1] for p in parts)]
                )
            if isinstance(item, dict):
                parts = [longest(child) for child in item.values()]
                keys = max((len(key) for key in item), default=0)
                return max([keys, *(p[0] for p in parts)]), max((p[1] for p in parts), default=0)
            return 0, 0

        strings, arrays = longest(value)
        found = find_too_long(value, 20, 8)
        assert (found is not None) == (strings > 20 or arrays > 8)
