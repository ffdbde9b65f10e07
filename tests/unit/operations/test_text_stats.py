"""``text.stats``: characters, words, lines and the most frequent words."""

from __future__ import annotations

import asyncio

import pydantic
import pytest

from worker.operations.text_stats import TextStatsOperation, TextStatsParams, TextStatsResult


def stats(text: str, top: int = 3) -> TextStatsResult:
    (result,) = asyncio.run(
        TextStatsOperation().handle([("acme", TextStatsParams(text=text, top=top))])
    )
    assert isinstance(result, TextStatsResult)
    return result


def test_counts_characters_words_and_lines() -> None:
    result = stats("The cat\nsat on the mat")
    assert (result.characters, result.words, result.lines) == (22, 6, 2)


def test_top_words_are_case_folded_and_most_frequent_first() -> None:
    result = stats("b a B c b A", top=2)
    assert [(w.word, w.count) for w in result.top_words] == [("b", 3), ("a", 2)]


def test_top_zero_lists_no_words() -> None:
    assert stats("a a a", top=0).top_words == []


def test_empty_text_has_no_lines_or_words() -> None:
    result = stats("")
    assert (result.characters, result.words, result.lines, result.top_words) == (0, 0, 0, [])


def test_words_are_unicode_aware() -> None:
    result = stats("été café été")
    assert result.words == 3
    assert (result.top_words[0].word, result.top_words[0].count) == ("été", 2)


def test_each_request_of_a_batch_gets_its_own_answer() -> None:
    params = [("acme", TextStatsParams(text="a")), ("globex", TextStatsParams(text="a b"))]
    results = asyncio.run(TextStatsOperation().handle(params))
    assert [r.words for r in results if isinstance(r, TextStatsResult)] == [1, 2]


@pytest.mark.parametrize(
    "params", [{"text": 3}, {"text": "x", "top": 51}, {"text": "x", "extra": 1}]
)
def test_params_are_strict(params: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        TextStatsParams.model_validate(params)
