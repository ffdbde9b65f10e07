"""Percentiles and per-second buckets, without numpy's interpolation surprises."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0-100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max of latencies in milliseconds."""
    ordered = sorted(values)
    return {
        "p50_ms": round(percentile(ordered, 50), 2),
        "p95_ms": round(percentile(ordered, 95), 2),
        "p99_ms": round(percentile(ordered, 99), 2),
        "max_ms": round(ordered[-1], 2) if ordered else float("nan"),
    }


def per_second(times: Sequence[float], start: float) -> list[int]:
    """How many of ``times`` (epoch s) fall in each 1-second bucket from ``start``."""
    if not times:
        return []
    buckets = [0] * (int(max(times) - start) + 1)
    for t in times:
        buckets[max(0, int(t - start))] += 1
    return buckets


def latency_per_second(
    pairs: Sequence[tuple[float, float]], start: float
) -> dict[str, list[float | None]]:
    """p50, p99 and max latency (ms) of the requests created in each 1-second bucket from ``start``.

    ``pairs`` are ``(created epoch s, latency ms)``; a second without a request is None.
    """
    if not pairs:
        return {"p50_ms": [], "p99_ms": [], "max_ms": []}
    buckets: list[list[float]] = [[] for _ in range(int(max(t for t, _ in pairs) - start) + 1)]
    for t, latency in pairs:
        buckets[max(0, int(t - start))].append(latency)
    out: dict[str, list[float | None]] = {"p50_ms": [], "p99_ms": [], "max_ms": []}
    for bucket in buckets:
        ordered = sorted(bucket)
        for key, q in (("p50_ms", 50.0), ("p99_ms", 99.0), ("max_ms", 100.0)):
            out[key].append(round(percentile(ordered, q), 2) if ordered else None)
    return out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return {"median": median, "min": ordered[0], "max": ordered[-1]}
