"""What a statement may do on the endpoint, judged on ClickHouse's own rendering of it.

``readonly=1`` makes ClickHouse refuse writes, DDL and settings changes, but chDB
is ``clickhouse-local`` inside the worker: a few things that a ClickHouse server
refuses or confines to its own directories, ``clickhouse-local`` allows. On the
endpoint they are refused here, before the query runs:

- more than one statement (chDB runs every statement of a text, a server one);
- statements other than reads (``KILL QUERY`` works in readonly mode and would
  stop the sink's inserts; it is refused with everything else that is not a read);
- ``INTO OUTFILE`` (it writes a file on the worker's host);
- the ``file()`` function (it reads any file on the worker's host);
- ``DESCRIBE`` of a table function (it infers a schema by reading a URL or a file).

The text inspected is the one ``formatQuerySingleLine`` returns: ClickHouse's
parser has already accepted it as exactly one statement and rendered it with
upper-case keywords, single-quoted strings and back-quoted identifiers, so a
small tokenizer suffices and comments or odd spacing cannot hide anything.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from worker.clickhouse.endpoint.errors import (
    ACCESS_DENIED,
    INTO_OUTFILE_NOT_ALLOWED,
    ClickHouseError,
)

READ_STATEMENTS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "EXISTS", "EXPLAIN", "SET", "USE"}
)
_FILE_READERS = frozenset({"file"})

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<quoted>`(?:[^`\\]|\\.)*`|"(?:[^"\\]|\\.)*")
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "string", "identifier" (bare or quoted) or "other"
    text: str  # identifiers unquoted; the character itself for "other"
    bare: bool  # an unquoted word (a keyword or a plain identifier)
    depth: int  # parentheses open before this token


@dataclass(frozen=True, slots=True)
class Shape:
    """What the endpoint needs to know about an accepted statement."""

    kind: str
    output_format: str | None


def tokens(canonical: str) -> Iterator[Token]:
    """The tokens of a rendered statement, without whitespace."""
    depth = 0
    for match in _TOKEN.finditer(canonical):
        group = match.lastgroup
        text = match.group()
        if group == "space":
            continue
        if group == "string":
            yield Token("string", text, bare=False, depth=depth)
        elif group == "quoted":
            yield Token("identifier", _unquote(text), bare=False, depth=depth)
        elif group == "word":
            yield Token("identifier", text, bare=True, depth=depth)
        else:
            if text == ")":
                depth = max(depth - 1, 0)
            yield Token("other", text, bare=False, depth=depth)
            if text == "(":
                depth += 1


def inspect(canonical: str, user: str) -> Shape:
    """The statement's kind and output format, or ClickHouse's error for what is refused."""
    found = list(tokens(canonical))
    words = [t for t in found if t.kind == "identifier"]
    kind = words[0].text.upper() if words and words[0].bare else ""
    if kind not in READ_STATEMENTS:
        raise ClickHouseError.readonly(user)
    for here, after in itertools.pairwise(found):
        pair = (here.text.upper(), after.text.upper()) if here.bare and after.bare else None
        if pair == ("INTO", "OUTFILE"):
            raise ClickHouseError(INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed.")
        if here.kind == "identifier" and here.text in _FILE_READERS and after.text == "(":
            raise ClickHouseError(
                ACCESS_DENIED,
                f"{user}: Not enough privileges. The {here.text}() function reads files on "
                "the worker's host and is not available on this endpoint.",
            )
    if kind == "DESCRIBE":
        _refuse_table_function(found, user)
    return Shape(kind, _output_format(found))


def _refuse_table_function(found: list[Token], user: str) -> None:
    rest = found[1:]
    if rest and rest[0].bare and rest[0].text.upper() == "TABLE":
        rest = rest[1:]
    if len(rest) >= 2 and rest[0].kind == "identifier" and rest[1].text == "(":
        raise ClickHouseError(
            ACCESS_DENIED,
            f"{user}: Not enough privileges. DESCRIBE of the table function {rest[0].text}() "
            "is not available on this endpoint.",
        )


def _output_format(found: list[Token]) -> str | None:
    name = None
    for here, after in itertools.pairwise(found):
        if here.bare and here.text == "FORMAT" and here.depth == 0 and after.kind == "identifier":
            name = after.text
    return name


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)
