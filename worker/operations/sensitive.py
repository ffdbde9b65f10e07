"""Sensitive fields: declared on an operation's models, kept out of wherever they would leak.

Mark a top-level field of a params or result model, saying how ClickHouse rows
may keep it::

    text: Annotated[str, Field(max_length=100_000), sensitive(store="encrypt")]
    top_words: Annotated[list[WordCount], sensitive()]  # store="omit", the default

The mark shows in the JSON Schema as ``"x-sensitive": "omit"`` or
``"x-sensitive": "encrypt"``. Whatever the policy, the worker replaces the value
with ``"[redacted]"`` in dead letters (whose bytes are otherwise kept as they
came) and in its logs. In the ``params`` and ``result`` columns of ClickHouse's
``requests`` rows, an ``omit`` field is left out and an ``encrypt`` field is
stored as ``enc:v1:<base64>`` (see :mod:`worker.operations.storage`). ``omit``
is the default because nothing stored is the safer answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

REDACTED = "[redacted]"
_MARK = "x-sensitive"

#: How a ClickHouse row keeps a sensitive field: left out, or encrypted.
StorePolicy = Literal["omit", "encrypt"]
_POLICIES: frozenset[str] = frozenset(get_args(StorePolicy))


def sensitive(store: StorePolicy = "omit") -> Any:
    """The field annotation that marks a value as sensitive, and how rows may keep it."""
    if store not in _POLICIES:
        raise ValueError(f"sensitive(store={store!r}): expected one of {sorted(_POLICIES)}")
    return Field(json_schema_extra={_MARK: store})


def storage_policies(model: type[BaseModel]) -> dict[str, StorePolicy]:
    """``model``'s sensitive fields (by their JSON name) and how rows may keep each."""
    found: dict[str, StorePolicy] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        mark = extra.get(_MARK) if isinstance(extra, dict) else None
        if mark in _POLICIES:
            found[info.alias or name] = mark  # type: ignore[assignment]
    return found


def sensitive_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names of ``model``'s fields marked :func:`sensitive`, whatever their policy."""
    return frozenset(storage_policies(model))


def redact(values: Mapping[str, Any], fields: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``values`` with the ``fields`` present replaced, and the names replaced."""
    out = dict(values)
    replaced = []
    for name in sorted(fields):
        if name in out:
            out[name] = REDACTED
            replaced.append(name)
    return out, replaced
