"""The ``params`` and ``result`` columns of a ``requests`` row, as the operation declares.

Each operation's models say which fields are sensitive and how a row may keep
them (:func:`worker.operations.sensitive.sensitive`): ``omit`` leaves the field
out, ``encrypt`` stores it sealed as ``enc:v1:<base64>``
(:class:`~worker.operations.encryption.FieldCipher`). Without a master key
there is nothing to seal with, and ``encrypt`` fields are left out too.

This runs once per request on the hot path, so each operation's policy is
worked out once and a row is built from the plain dicts the flow already holds
(the answered data; the params as the cache already serialized them, when it
did): no new models, one orjson call, and a copy of the dict only when the
operation has sensitive fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from worker.operations.base import Operation
from worker.operations.encryption import FieldCipher
from worker.operations.sensitive import storage_policies

log = logging.getLogger(__name__)

#: Longer JSON is not stored with the row (the columns are for analysis, not archiving).
MAX_STORED_JSON = 64 * 1024


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """What to do with one model's sensitive fields in a row."""

    omit: frozenset[str] = frozenset()
    encrypt: frozenset[str] = frozenset()

    @property
    def clear(self) -> bool:
        """True when the model has no sensitive field: the values are stored as they are."""
        return not (self.omit or self.encrypt)

    @classmethod
    def of(cls, model: type[BaseModel], *, can_encrypt: bool) -> FieldPlan:
        policies = storage_policies(model)
        encrypt = frozenset(name for name, store in policies.items() if store == "encrypt")
        omit = frozenset(policies) - encrypt
        if not can_encrypt:
            return cls(omit=omit | encrypt)
        return cls(omit=omit, encrypt=encrypt)


@dataclass(frozen=True, slots=True)
class OperationPlan:
    params: FieldPlan
    result: FieldPlan


class RowValues:
    """Builds the JSON text of a row's ``params`` and ``result`` columns."""

    def __init__(self, cipher: FieldCipher | None = None) -> None:
        self._cipher = cipher
        self._plans: dict[str, OperationPlan] = {}

    def plan(self, operation: Operation[Any, Any]) -> OperationPlan:
        """``operation``'s policy, worked out on first use."""
        plan = self._plans.get(operation.name)
        if plan is None:
            can_encrypt = self._cipher is not None
            plan = OperationPlan(
                FieldPlan.of(operation.params_model, can_encrypt=can_encrypt),
                FieldPlan.of(operation.result_model, can_encrypt=can_encrypt),
            )
            declared = storage_policies(operation.params_model) | storage_policies(
                operation.result_model
            )
            if not can_encrypt and "encrypt" in declared.values():
                log.warning(
                    "no master key to encrypt %s's sensitive fields with: ClickHouse rows "
                    "leave them out instead",
                    operation.name,
                )
            self._plans[operation.name] = plan
        return plan

    def params(
        self, operation: Operation[Any, Any], params: BaseModel | None, canonical: str = ""
    ) -> str:
        """The ``params`` column: the validated params as JSON, sensitive fields per the policy.

        ``canonical`` is the same params as JSON when the cache already made it
        (its key is derived from them): reused as is when nothing is sensitive.
        """
        if params is None:
            return ""
        plan = self.plan(operation).params
        if plan.clear and canonical:
            return canonical if len(canonical) <= MAX_STORED_JSON else ""
        return self._encode(plan, params.model_dump(mode="json", by_alias=True))

    def result(self, operation: Operation[Any, Any], values: Mapping[str, Any] | None) -> str:
        """The ``result`` column: the answered data as JSON, sensitive fields per the policy."""
        if values is None:
            return ""
        return self._encode(self.plan(operation).result, values)

    def _encode(self, plan: FieldPlan, values: Mapping[str, Any]) -> str:
        if not plan.clear:
            kept = {name: value for name, value in values.items() if name not in plan.omit}
            if plan.encrypt:
                cipher = self._cipher
                assert cipher is not None  # noqa: S101 - FieldPlan.of encrypts only with a cipher
                for name in plan.encrypt & kept.keys():
                    kept[name] = cipher.seal(kept[name])
            values = kept
        text = orjson.dumps(values)
        return text.decode() if len(text) <= MAX_STORED_JSON else ""
