"""The PNG chart: outputs per second over time, and the latency distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # files only; no display on a server

import matplotlib.pyplot as plt

LABELS = {
    "worker": "worker (full flow)",
    "aiokafka": "plain aiokafka loop",
    "faust": "plain Faust forwarder",
    "one": "worker, 1 process",
    "two": "worker, 2 processes",
    "latency_max_rate_ms": "max rate: consumed -> published",
    "latency_half_rate_ms": "half rate: created -> published",
    "latency_one_process_ms": "1 process: consumed -> published",
    "latency_two_processes_ms": "2 processes: consumed -> published",
}


def _cdf(ax: Any, values: list[float], label: str) -> None:
    if not values:
        return
    ordered = sorted(max(v, 0.1) for v in values)
    step = max(1, len(ordered) // 2000)
    xs = [*ordered[::step], ordered[-1]]
    ys = [i * step / len(ordered) for i in range(len(xs) - 1)] + [1.0]
    ax.plot(xs, ys, label=f"{label} (n={len(values):,})")


def draw(path: Path, results: dict[str, Any]) -> None:
    series = results["_series"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    for key, buckets in series["per_second"].items():
        left.plot(range(len(buckets)), buckets, label=LABELS.get(key, key), drawstyle="steps-post")
    if series["per_second"]:
        left.set_xlabel("seconds since the first request consumed")
        left.set_ylabel("outputs published per second")
        left.set_title("throughput over time (first round)")
        left.grid(alpha=0.3)
        left.legend()
    elif series.get("p99_per_second"):  # paced mode: the rate is the one offered
        for key, p99 in series["p99_per_second"].items():
            left.plot(range(len(p99)), p99, label=LABELS.get(key, key), drawstyle="steps-post")
        left.set_xlabel("seconds since the first timed request was created")
        left.set_ylabel("p99 latency of that second's requests, ms")
        left.set_title("latency over time (first round)")
        left.grid(alpha=0.3)
        left.legend()
    else:
        left.axis("off")
    for key, values in series.items():
        if key.startswith("latency"):
            _cdf(right, values, LABELS.get(key, key))
    right.set_xscale("log")
    right.set_xlabel("latency, ms (log)")
    right.set_ylabel("share of responses at or below")
    right.set_title("latency distribution")
    right.axhline(0.99, color="grey", lw=0.8, ls=":")
    right.grid(alpha=0.3, which="both")
    right.legend(loc="lower right")
    title = f"request-worker benchmark, n={results['n']:,} ({results.get('mode')})"
    if results.get("mode") == "paced":
        title = f"request-worker latency at {results['paced_rate_rps']:,.0f} requests/s offered"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
