"""Invalidation messages: strict parsing, and the copy that never fans out again."""

from __future__ import annotations

import pytest

from worker.cache.invalidation import Invalidation
from worker.errors import ValidationFailedError


def test_a_message_round_trips_and_defaults_to_every_partition() -> None:
    message = Invalidation.decode(b'{"kind": "tag", "value": "product:SKU-1"}')
    assert (message.kind, message.value, message.scope) == ("tag", "product:SKU-1", "all")
    assert Invalidation.decode(message.encode()) == message


def test_the_copy_for_other_partitions_is_applied_only_where_it_lands() -> None:
    message = Invalidation(kind="tenant", value="acme", reason="offboarding")
    copy = message.copy_for_partitions()
    assert copy.scope == "partition"
    assert (copy.kind, copy.value, copy.reason) == ("tenant", "acme", "offboarding")


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"kind": "everything", "value": "x"}', "kind"),
        (b'{"kind": "tag"}', "value"),
        (b'{"kind": "tag", "value": ""}', "value"),
        (b'{"kind": "tag", "value": "x", "extra": 1}', "extra"),
        (b"not json", ""),
        (None, ""),
    ],
)
def test_malformed_messages_are_refused_with_the_failing_path(raw: bytes | None, path: str) -> None:
    with pytest.raises(ValidationFailedError) as caught:
        Invalidation.decode(raw)
    assert caught.value.path == path
