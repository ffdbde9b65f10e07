"""Who a verified request comes from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Method = Literal["hmac", "jwt", "anonymous"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified identity behind a request.

    ``tenant`` is None only for the anonymous (``none``) mode, where the tenant
    the payload names is trusted and every scope is granted: a development mode.
    """

    method: Method
    subject: str
    tenant: str | None
    scopes: frozenset[str]

    @property
    def anonymous(self) -> bool:
        return self.method == "anonymous"

    def may(self, scopes: frozenset[str]) -> frozenset[str]:
        """The scopes of ``scopes`` this principal lacks (empty: allowed)."""
        if self.anonymous:
            return frozenset()
        return scopes - self.scopes


ANONYMOUS = Principal("anonymous", "anonymous", None, frozenset())
