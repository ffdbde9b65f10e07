"""Reading Prometheus text and the Grafana dashboard, for the tests of what operators see."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "worker.json"

#: Metric names the dashboard uses before the worker exports them, and what brings them.
#: A name leaves this list when the worker exports it (a test checks both ways).
PENDING: dict[str, str] = {}

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
_TYPE = re.compile(r"^# TYPE (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?P<kind>\w+)$")
_METRIC = re.compile(r"\bworker_[a-z0-9_]+\b")


def series_names(text: str) -> set[str]:
    """Every series name an exposition can carry, from its ``# TYPE`` lines.

    Declared families count even without samples yet: a labelled counter that
    never moved (``worker_retries_total`` before the first retry) still exists.
    """
    names = set()
    for line in text.splitlines():
        match = _TYPE.match(line)
        if not match:
            continue
        name, kind = match["name"], match["kind"]
        if kind == "counter":
            names.add(name if name.endswith("_total") else f"{name}_total")
        elif kind in _SUFFIXES:
            names.update(name + suffix for suffix in _SUFFIXES[kind])
        else:
            names.add(name)
    return names


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return parsed.get((name, frozenset(labels.items())), 0.0)


def load_dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) of every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def metric_names(expr: str) -> set[str]:
    """The worker metric names a PromQL expression reads (every one starts with worker_)."""
    return set(_METRIC.findall(expr))
