"""API layer, after validation: may this principal do this, for this tenant?

Three checks, in order:

1. a signed request id must be the envelope's (``unauthenticated``: the
   signature covered another request);
2. the tenant comes only from the credential: an envelope naming another
   tenant is ``forbidden``;
3. the credential must carry every scope the operation declares
   (``forbidden``, with ``details.missing``).
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.auth import signing
from worker.auth.authenticators import header
from worker.errors import ForbiddenError, UnauthenticatedError
from worker.flow.records import Work


class AuthorizeStage:
    """Fails requests whose credential does not cover them."""

    name = "authorize"

    async def __call__(self, batch: Sequence[Work]) -> None:
        for work in batch:
            if work.pending and work.request is not None and work.operation is not None:
                self._authorize(work)

    @staticmethod
    def _authorize(work: Work) -> None:
        principal = work.principal
        request = work.request
        operation = work.operation
        assert request is not None  # noqa: S101 - checked by the caller
        assert operation is not None  # noqa: S101
        if principal is None:
            # Only a pipeline built without the authenticate stage gets here.
            work.fail(UnauthenticatedError("the request was not authenticated", "missing"))
            return
        if principal.method == "hmac":
            signed = header(work.record, signing.REQUEST_ID_HEADER)
            if signed != request.request_id:
                work.fail(
                    UnauthenticatedError(
                        "the signed request-id header is not the envelope's request_id",
                        "request_id_mismatch",
                    )
                )
                return
        if principal.tenant is not None and principal.tenant != request.tenant:
            work.fail(
                ForbiddenError(
                    "the credential belongs to another tenant than the request names",
                    details={"path": "tenant", "reason": "tenant_mismatch"},
                )
            )
            return
        missing = principal.may(operation.scopes)
        if missing:
            work.fail(
                ForbiddenError(
                    f"operation {operation.name} needs scopes the credential lacks",
                    details={
                        "reason": "missing_scope",
                        "required": sorted(operation.scopes),
                        "missing": sorted(missing),
                    },
                )
            )
