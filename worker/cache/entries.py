"""What a cache entry holds, and its bytes in RocksDB and in the changelog.

A stored value is an 8-byte big-endian expiry time (Unix seconds, float)
followed by the entry as JSON. The expiry leads so that the sweep and the
restore path can tell an expired entry without parsing JSON; the tag index
stores the bare 8 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

_EXPIRY = struct.Struct(">d")

EntryKind = Literal["ok", "not_found"]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cached answer: a result (``ok``) or a not-found error, with its expiry and dependencies.

    ``dependencies`` maps each tag the answer depends on (``product:SKU-1``,
    ``rate:USD``) to the revision of that data when the answer was computed;
    an entry whose dependencies moved on is stale even before it expires.
    """

    kind: EntryKind
    body: dict[str, Any]
    expires_at: float
    stored_at: float
    dependencies: dict[str, str] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        """Whether the entry may no longer be served at ``now``."""
        return now >= self.expires_at

    @property
    def tags(self) -> list[str]:
        """The tags the index holds for this entry: those of its dependencies."""
        return list(self.dependencies)

    def encode(self) -> bytes:
        payload = orjson.dumps(
            {"k": self.kind, "b": self.body, "s": self.stored_at, "d": self.dependencies}
        )
        return _EXPIRY.pack(self.expires_at) + payload

    @classmethod
    def decode(cls, raw: bytes) -> CacheEntry:
        (expires_at,) = _EXPIRY.unpack_from(raw)
        data = orjson.loads(raw[_EXPIRY.size :])
        return cls(data["k"], data["b"], expires_at, data["s"], data["d"])


def expiry_of(raw: bytes) -> float:
    """The expiry time at the head of a stored entry or index value."""
    return float(_EXPIRY.unpack_from(raw)[0])


def encode_expiry(expires_at: float) -> bytes:
    """An index value: just the expiry of the entry it points to."""
    return _EXPIRY.pack(expires_at)


def index_key(tag: str, key: str) -> str:
    """The tag-index key of ``key`` under ``tag``; all keys of a tag share the prefix."""
    return f"{tag}\0{key}"


def index_prefix(tag: str) -> str:
    return f"{tag}\0"


def split_index_key(raw: str) -> tuple[str, str]:
    """``(tag, key)`` of a tag-index key."""
    tag, _, key = raw.partition("\0")
    return tag, key
