"""The operation registry."""

from __future__ import annotations

import pytest

from worker.errors import ConfigurationError
from worker.operations.quote import QuoteOperation
from worker.operations.registry import OperationRegistry, default_registry
from worker.operations.text_stats import TextStatsOperation
from worker.reference.memory import demo_catalog


def test_the_default_registry_serves_the_example_operations() -> None:
    registry = default_registry()
    assert registry.names() == ["price.quote", "text.stats"]
    assert len(registry) == 2
    assert isinstance(registry.get("price.quote"), QuoteOperation)
    assert {operation.name for operation in registry} == {"price.quote", "text.stats"}


def test_an_unknown_name_is_none() -> None:
    assert default_registry().get("no.such.op") is None


def test_registering_a_name_twice_is_a_configuration_error() -> None:
    registry = OperationRegistry([TextStatsOperation()])
    with pytest.raises(ConfigurationError, match=r"text\.stats"):
        registry.register(TextStatsOperation())
    assert len(registry) == 1


def test_names_are_sorted_whatever_the_registration_order() -> None:
    registry = OperationRegistry([TextStatsOperation(), QuoteOperation(demo_catalog())])
    assert registry.names() == ["price.quote", "text.stats"]
