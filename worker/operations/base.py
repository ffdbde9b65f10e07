"""What an operation is: typed params and result, and a batch handler."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
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
    dead letters, and left out of or encrypted in ClickHouse rows, as declared.

    Answers are cached for ``cache_ttl_s`` seconds (0: never), ``not_found``
    answers for ``cache_not_found_ttl_s`` (0: never). An operation that reads
    reference data names it in :meth:`cache_dependencies`, so that an answer
    computed from data that changed since is never served. Bump ``version``
    when the answer to the same params changes: it is part of the cache key.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    #: What a credential must carry to call the operation.
    scopes: ClassVar[frozenset[str]] = frozenset()
    params_model: ClassVar[type[BaseModel]]
    result_model: ClassVar[type[BaseModel]]
    cache_ttl_s: ClassVar[float] = 0.0
    cache_not_found_ttl_s: ClassVar[float] = 0.0

    def cache_dependencies(
        self, tenant_params: Sequence[tuple[str, P]]
    ) -> Sequence[Mapping[str, str]]:
        """For every request, the tags of the data its answer depends on, with their revisions.

        A tag names a piece of reference data (``product:SKU-1``); its revision
        changes whenever that data does ("" while it does not exist). The
        cache calls this before computing an answer and again before serving
        it: an entry is served only while every revision still matches. Local
        reads only; no network round trips.
        """
        return [{} for _ in tenant_params]

    @abstractmethod
    async def handle(self, tenant_params: Sequence[tuple[str, P]]) -> Sequence[R | ClientError]:
        """Answer every ``(tenant, params)`` pair, in order."""
