"""What an operation is: typed params and result, and a batch handler."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel

from worker.errors import ClientError

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


class Operation(ABC, Generic[P, R]):
    """A named, versioned piece of business logic.

    Subclasses set ``name``, ``version``, ``scopes``, ``params_model`` and ``result_model``
    and implement :meth:`handle` for a whole batch: one call sees every request
    of the batch that asked for this operation, so that lookups can be batched.
    Server-side failures are raised (and retried by the caller); client errors
    are returned in place of the result they replace.

    Fields of ``params_model`` or ``result_model`` declared with
    :func:`worker.operations.sensitive.sensitive` are redacted in logs and
    dead letters.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    #: What a credential must carry to call the operation.
    scopes: ClassVar[frozenset[str]] = frozenset()
    params_model: ClassVar[type[BaseModel]]
    result_model: ClassVar[type[BaseModel]]

    @abstractmethod
    async def handle(self, tenant_params: Sequence[tuple[str, P]]) -> Sequence[R | ClientError]:
        """Answer every ``(tenant, params)`` pair, in order."""
