"""Sensitive fields: declared on an operation's models, redacted wherever they would leak.

Mark a top-level field of a params or result model::

    text: Annotated[str, Field(max_length=100_000), sensitive()]

The mark shows in the JSON Schema as ``"x-sensitive": true``. The worker then
replaces the value with ``"[redacted]"`` in dead letters (whose bytes are
otherwise kept as they came) and in its logs. ClickHouse rows hold no params
or results, so sensitive values never reach the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

REDACTED = "[redacted]"
_MARK = "x-sensitive"


def sensitive() -> Any:
    """The field annotation that marks a value as sensitive."""
    return Field(json_schema_extra={_MARK: True})


def sensitive_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names of ``model``'s fields marked :func:`sensitive`."""
    found = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get(_MARK) is True:
            found.add(info.alias or name)
    return frozenset(found)


def redact(values: Mapping[str, Any], fields: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``values`` with the ``fields`` present replaced, and the names replaced."""
    out = dict(values)
    replaced = []
    for name in sorted(fields):
        if name in out:
            out[name] = REDACTED
            replaced.append(name)
    return out, replaced
