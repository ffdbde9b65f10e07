"""Factories for the observability tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector


@pytest.fixture
def registry_with() -> Callable[..., CollectorRegistry]:
    """A fresh registry holding the given collectors (the default one is shared)."""

    def make(*collectors: Collector) -> CollectorRegistry:
        registry = CollectorRegistry()
        for collector in collectors:
            registry.register(collector)
        return registry

    return make
