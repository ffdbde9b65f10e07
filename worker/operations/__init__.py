"""The service layer: business operations in a registry, looked up by name."""

from worker.operations.base import Operation
from worker.operations.registry import OperationRegistry, default_registry

__all__ = ["Operation", "OperationRegistry", "default_registry"]
