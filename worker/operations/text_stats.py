"""``text.stats``: counts of a text, a pure operation with no lookups."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from worker.errors import ClientError
from worker.operations.base import Operation
from worker.operations.sensitive import sensitive

_WORD = re.compile(r"\w+", re.UNICODE)


class TextStatsParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # Encrypted in rows: an operator with the key can look at what was asked.
    text: Annotated[str, Field(max_length=100_000), sensitive(store="encrypt")]
    top: Annotated[int, Field(ge=0, le=50)] = 3


class WordCount(BaseModel):
    word: str
    count: int


class TextStatsResult(BaseModel):
    characters: int
    words: int
    lines: int
    # The most frequent words give the text away: left out of rows.
    top_words: Annotated[list[WordCount], sensitive(store="omit")]


class TextStatsOperation(Operation[TextStatsParams, TextStatsResult]):
    """Characters, words, lines and the most frequent words of a text."""

    name = "text.stats"
    version = 1
    description = "Count characters, words and lines, and list the most frequent words."
    scopes = frozenset({"text:analyze"})
    params_model = TextStatsParams
    result_model = TextStatsResult
    # A pure function of its params: an answer never goes stale, so only the TTL bounds it.
    cache_ttl_s: ClassVar[float] = 3600.0

    async def handle(
        self, tenant_params: Sequence[tuple[str, TextStatsParams]]
    ) -> Sequence[TextStatsResult | ClientError]:
        return [self._one(params) for _, params in tenant_params]

    @staticmethod
    def _one(params: TextStatsParams) -> TextStatsResult:
        words = [word.lower() for word in _WORD.findall(params.text)]
        common = Counter(words).most_common(params.top) if params.top else []
        return TextStatsResult(
            characters=len(params.text),
            words=len(words),
            lines=params.text.count("\n") + 1 if params.text else 0,
            top_words=[WordCount(word=word, count=count) for word, count in common],
        )
