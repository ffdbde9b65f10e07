"""The hit-ratio benchmark, small: a replayed workload through a real worker."""

from __future__ import annotations

import pytest

from bench.cache_hit_ratio import run
from tests.conftest import Services

pytestmark = pytest.mark.e2e


def test_a_replayed_workload_hits_every_repeat_once_its_answers_are_cached(
    services: Services,
) -> None:
    report = run(
        requests=400,
        keys=60,
        rounds=2,
        wave=50,
        bootstrap=services.bootstrap,
        redis_url=services.redis_url,
    )
    first, replayed = report.rounds
    assert first.hits + first.misses == first.requests == 400
    assert first.bypassed == 0, "one worker owns every partition"
    # Only repeats can hit, and repeats inside one wave miss together.
    assert 0 < first.hit_ratio <= first.ideal_hit_ratio < 1
    assert first.misses >= first.distinct
    assert (replayed.hits, replayed.hit_ratio) == (400, 1.0), "every answer is cached by now"
    assert report.hit_ratio == (first.hits + replayed.hits) / 800
