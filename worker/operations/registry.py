"""The registry of operations the worker serves."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from worker.errors import ConfigurationError
from worker.operations.base import Operation
from worker.operations.quote import QuoteOperation
from worker.operations.text_stats import TextStatsOperation
from worker.reference.base import Catalog
from worker.reference.memory import demo_catalog


class OperationRegistry:
    """Operations by name. Registering a name twice is a start-up error."""

    def __init__(self, operations: Iterable[Operation[Any, Any]] = ()) -> None:
        self._by_name: dict[str, Operation[Any, Any]] = {}
        for operation in operations:
            self.register(operation)

    def register(self, operation: Operation[Any, Any]) -> None:
        """Add ``operation``; its name must be new."""
        if operation.name in self._by_name:
            raise ConfigurationError(f"operation {operation.name!r} is registered twice")
        self._by_name[operation.name] = operation

    def get(self, name: str) -> Operation[Any, Any] | None:
        """The operation called ``name``, or None."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._by_name)

    def scopes(self) -> frozenset[str]:
        """Every scope some operation needs: what a key for all operations carries."""
        return frozenset().union(*(operation.scopes for operation in self._by_name.values()))

    def __iter__(self) -> Iterator[Operation[Any, Any]]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)


def default_registry(catalog: Catalog | None = None) -> OperationRegistry:
    """The operations this worker ships with, joined with ``catalog`` (default: the demo's)."""
    return OperationRegistry(
        [QuoteOperation(catalog if catalog is not None else demo_catalog()), TextStatsOperation()]
    )
