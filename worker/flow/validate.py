"""Client layer, step two: the JSON object to a typed request and its operation's params."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pydantic

from worker.contracts.request import RequestEnvelope
from worker.errors import UnknownOperationError, ValidationFailedError
from worker.flow.records import Work
from worker.operations.registry import OperationRegistry


def field_errors(exc: pydantic.ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    """Pydantic's errors as ``{path, message, type}`` with dotted paths."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in (*((prefix,) if prefix else ()), *error["loc"]))
        errors.append({"path": path, "message": error["msg"], "type": error["type"]})
    return errors


class ValidateStage:
    """Validates the envelope strictly (unknown fields rejected), then the params."""

    name = "validate"

    def __init__(self, registry: OperationRegistry) -> None:
        self._registry = registry

    async def __call__(self, batch: Sequence[Work]) -> None:
        for work in batch:
            if work.pending and work.payload is not None:
                self._validate(work, work.payload)

    def _validate(self, work: Work, payload: dict[str, Any]) -> None:
        try:
            request = RequestEnvelope.model_validate(payload)
        except pydantic.ValidationError as exc:
            work.fail(ValidationFailedError(field_errors(exc)), dead_letter=True)
            return
        work.request = request
        operation = self._registry.get(request.operation)
        if operation is None:
            work.fail(
                UnknownOperationError(request.operation, self._registry.names()), dead_letter=True
            )
            return
        try:
            work.params = operation.params_model.model_validate(request.params)
        except pydantic.ValidationError as exc:
            work.fail(ValidationFailedError(field_errors(exc, "params")), dead_letter=True)
            return
        work.operation = operation
