"""BatchHistogram: a batch of observations renders exactly as prometheus-client's Histogram."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from worker.observability.metrics import LATENCY_BUCKETS, BatchHistogram

VALUES = [0.0, 0.005, 0.0051, 0.3, 1.0, 2.5, 7.0, 299.0, 301.0, 12_000.0]


def _samples(registry: CollectorRegistry) -> list[str]:
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if line and not line.startswith("#")
    ]


def test_observe_many_matches_one_observe_per_value() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("x_seconds", "x", ["m"], buckets=LATENCY_BUCKETS, registry=theirs)
    batch = BatchHistogram("x_seconds", "x", ["m"], LATENCY_BUCKETS, registry=ours)
    for value in VALUES:
        reference.labels("a").observe(value)
    batch.labels("a").observe_many(iter(VALUES))
    assert _samples(ours) == _samples(theirs)


def test_batches_accumulate_per_label_set() -> None:
    registry = CollectorRegistry()
    batch = BatchHistogram("y_seconds", "y", ["m"], (1.0, 2.0), registry=registry)
    batch.labels("a").observe_many([0.5, 1.5])
    batch.labels("a").observe_many([3.0])
    batch.labels("b").observe_many([])
    assert registry.get_sample_value("y_seconds_count", {"m": "a"}) == 3
    assert registry.get_sample_value("y_seconds_bucket", {"m": "a", "le": "1.0"}) == 1
    assert registry.get_sample_value("y_seconds_bucket", {"m": "a", "le": "2.0"}) == 2
    assert registry.get_sample_value("y_seconds_sum", {"m": "a"}) == 5.0
    assert registry.get_sample_value("y_seconds_count", {"m": "b"}) == 0


def test_labels_must_match_the_label_names() -> None:
    batch = BatchHistogram("z_seconds", "z", ["m"], (1.0,), registry=None)
    with pytest.raises(ValueError, match="takes labels"):
        batch.labels("a", "b")
