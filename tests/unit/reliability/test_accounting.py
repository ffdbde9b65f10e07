"""The suite's accounting by source position, and the poison it sends, without services."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from reliability.load import LoadResult
from reliability.observe import Output, Outputs, Stored
from reliability.profiles import SHORT
from reliability.run import Run, figures
from reliability.scenarios import _offsets_table
from reliability.services import DedicatedServices
from reliability.traffic import (
    MAX_MESSAGE_BYTES,
    Message,
    PoisonFactory,
    Signer,
    _text_of_size,
    messages,
)
from worker.auth.keys import KeyMaterial
from worker.loadgen import TENANTS


def keys() -> dict[str, KeyMaterial]:
    return {t: KeyMaterial(key_id=f"rk_{t}", version=1, secret=f"s-{t}") for t in TENANTS}


def message(request_id: str, code: str = "ok", dead: str | None = None) -> Message:
    body = orjson.dumps({"request_id": request_id, "tenant": "acme"})
    return Message(request_id.encode(), body, (), code, dead, None if dead is None else code)


def run() -> Run:
    return Run("unit", SHORT, DedicatedServices(Path("/nonexistent"), 1, 2, 3), Path("/x"))


def stored(rows: list[tuple[int, int]], final: list[tuple[str, str]], counted: int) -> Stored:
    return Stored(rows, final, [], 0, counted)


def test_an_outcome_per_position_and_a_row_is_nothing_lost_and_nothing_doubled() -> None:
    load = LoadResult(
        sent={(0, 0): message("a"), (0, 1): message("b", "invalid_payload", "invalid_payload")}
    )
    outputs = Outputs(
        responses=[Output((0, 0), 1.0, "ok"), Output((0, 1), 1.0, "invalid_payload")],
        dead_letters=[Output((0, 1), 1.0, "invalid_payload", "invalid_payload")],
    )
    result = figures(run(), load, outputs, [stored([(0, 0), (0, 1)], [("acme", "a")], 2)])
    assert result.ok
    assert result.row["lost"] == 0
    assert result.row["dead_letters_by_reason"] == {"invalid_payload": 1}
    assert result.row["poison_dead_letters_expected"] == {"invalid_payload": 1}


def test_a_message_without_an_outcome_or_a_row_is_lost() -> None:
    load = LoadResult(sent={(0, 0): message("a"), (0, 1): message("b"), (1, 0): message("c")})
    outputs = Outputs(responses=[Output((0, 0), 1.0, "ok"), Output((1, 0), 1.0, "ok")])
    rows = [(0, 0), (0, 1)]
    result = figures(run(), load, outputs, [stored(rows, [("acme", "a"), ("acme", "b")], 2)])
    # (0, 1) was never answered; (1, 0) was answered but has no row.
    assert result.row["lost"] == 2
    assert result.row["missing_outputs"] == 1
    assert result.row["missing_rows"] == 1
    assert not result.ok


def test_copies_are_counted_raw_by_position_and_final_by_request_across_stores() -> None:
    load = LoadResult(sent={(0, 0): message("a")})
    outputs = Outputs(responses=[Output((0, 0), 1.0, "ok"), Output((0, 0), 2.0, "ok")])
    first = stored([(0, 0)], [("acme", "a")], 1)
    second = stored([(0, 0)], [("acme", "a")], 1)
    result = figures(run(), load, outputs, [first, second])
    assert result.row["duplicates_raw"] == 1
    assert result.row["duplicates_final"] == 1
    assert result.row["output_duplicates"] == 1
    assert result.row["usage_overcount"] == 1
    assert not result.ok, "a request stored twice with FINAL fails the scenario"


def test_a_wrong_answer_or_a_missing_dead_letter_fails_the_scenario() -> None:
    load = LoadResult(sent={(0, 0): message("a", "invalid_payload", "invalid_payload")})
    outputs = Outputs(responses=[Output((0, 0), 1.0, "ok")])
    result = figures(run(), load, outputs, [stored([(0, 0)], [("acme", "a")], 1)])
    assert result.row["wrong_answers"] == 1
    assert result.row["dead_letters_by_reason"] == {}
    assert not result.ok


def test_recovery_is_the_first_response_written_after_the_fault_ended() -> None:
    scenario = run()
    scenario.fault_end = 10.0
    load = LoadResult(sent={(0, 0): message("a"), (0, 1): message("b")})
    outputs = Outputs(responses=[Output((0, 0), 9.0, "ok"), Output((0, 1), 12.5, "ok")])
    result = figures(scenario, load, outputs, [stored([(0, 0), (0, 1)], [], 2)])
    assert result.row["recovery_s"] == 2.5


def test_a_message_at_the_size_limit_is_exactly_that_large() -> None:
    body = _text_of_size("r-1", MAX_MESSAGE_BYTES)
    assert len(body) == MAX_MESSAGE_BYTES
    assert len(_text_of_size("r-2", MAX_MESSAGE_BYTES + 1)) == MAX_MESSAGE_BYTES + 1


@pytest.mark.parametrize("seed", [1, 2])
def test_the_poison_cycles_through_every_kind_and_says_what_each_is_owed(seed: int) -> None:
    factory = PoisonFactory(Signer(keys()), random.Random(seed))  # noqa: S311 - test data
    made = [factory.make(i, "run") for i in range(len(factory.kinds))]
    assert [m.poison for m in made] == [kind for kind, _ in factory.kinds]
    owed = {m.poison: (m.code, m.dead_letter) for m in made}
    assert owed["size_over_limit"] == ("payload_too_large", "payload_too_large")
    assert owed["size_at_limit"] == ("ok", None)
    assert owed["forged_signature"] == ("unauthenticated", None)
    assert owed["reused_id"] == ("conflict", None)
    assert all(dict(m.headers).get("auth-signature") for m in made), "every kind is signed"


def test_a_workload_mixes_poison_in_at_the_rate_asked() -> None:
    batch = messages(Signer(keys()), 100, poison_every=10, full_poison=False, run_id="r")
    assert sum(m.poison is not None for m in batch) == 10
    assert len({m.key for m in batch}) == 100


def test_faust_recovery_tables_are_read_with_their_ditto_marks() -> None:
    message = (
        "[^---Recovery]: Highwater for active changelog partitions:\n"
        "+--------+\n| topic | partition | highwater |\n+---+\n"
        "| t.cache.entries.changelog | 0         | 74        |\n"
        "| \u3003                          | 1         | 76        |\n"
        "| t.reference.rates         | 0         | -1        |\n"
    )
    assert _offsets_table(message) == {
        ("t.cache.entries.changelog", 0): 74,
        ("t.cache.entries.changelog", 1): 76,
        ("t.reference.rates", 0): -1,
    }


def test_a_row_merged_into_a_replay_of_the_same_request_is_not_lost() -> None:
    original, replay = message("a"), message("a")
    load = LoadResult(sent={(0, 0): original, (0, 5): replay})
    outputs = Outputs(responses=[Output((0, 0), 1.0, "ok"), Output((0, 5), 1.0, "ok")])
    # A background merge kept only the replay's row (the later version).
    result = figures(run(), load, outputs, [stored([(0, 5)], [("acme", "a")], 2)])
    assert result.row["lost"] == 0
    assert result.ok
