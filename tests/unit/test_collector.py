"""The cycle collector's tuning: start-up's objects frozen, young collections rarer."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from worker import collector
from worker.settings import WorkerSettings


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored")
def test_objects_alive_at_start_up_are_frozen_and_young_collections_are_rarer() -> None:
    kept = [{"alive": i} for i in range(1000)]
    gc.unfreeze()
    collector.tune(50_000)
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (50_000, 20, 10)


@pytest.mark.usefixtures("restored")
def test_zero_keeps_cpythons_thresholds_but_still_freezes() -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    collector.tune(0)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored")
def test_cyclic_garbage_made_after_the_freeze_is_still_collected() -> None:
    collector.tune(50_000)

    class Node:
        other: object = None

    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    assert gone() is not None, "a cycle outlives reference counting"
    gc.collect()
    assert gone() is None


def test_the_worker_collects_the_young_generation_every_10000_allocations() -> None:
    assert WorkerSettings().gc_young_threshold == 10_000
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        WorkerSettings(gc_young_threshold=-1)
