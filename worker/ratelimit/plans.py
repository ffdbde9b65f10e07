"""Rate-limit plans: limits per tenant and per tenant+operation, from a TOML file.

``LIMITS_PLANS_FILE`` names a file like::

    default_plan = "standard"          # tenants not listed below

    [plans.standard]
    rate_per_second = 5000
    burst = 10000

    [plans.free]
    rate_per_second = 20
    burst = 40
    [plans.free.operations."price.quote"]   # a second bucket, per tenant and operation
    rate_per_second = 5
    burst = 10

    [tenants]
    acme = "free"

Without a file (or without ``default_plan``), unlisted tenants get
``LIMITS_RATE_PER_SECOND`` / ``LIMITS_RATE_BURST`` and no operation buckets.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from worker.errors import ConfigurationError
from worker.ratelimit.base import Limit
from worker.settings import LimitsSettings


class BucketLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_second: Annotated[float, Field(gt=0)]
    burst: Annotated[int, Field(gt=0)]

    def limit(self) -> Limit:
        return Limit(self.rate_per_second, self.burst)


class Plan(BucketLimit):
    """The tenant's bucket, and optional buckets per operation."""

    operations: dict[str, BucketLimit] = Field(default_factory=dict)


class PlansFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_plan: str | None = None
    plans: dict[str, Plan] = Field(default_factory=dict)
    tenants: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _plans_exist(self) -> PlansFile:
        named = set(self.tenants.values()) | ({self.default_plan} if self.default_plan else set())
        unknown = sorted(named - set(self.plans))
        if unknown:
            raise ValueError(f"tenants or default_plan name undefined plans: {unknown}")
        return self


class RatePlans:
    """Which buckets a tenant's request for an operation draws from."""

    def __init__(self, plans: PlansFile, fallback: Limit) -> None:
        self._plans = plans
        self._fallback = fallback

    @classmethod
    def from_settings(cls, limits: LimitsSettings) -> RatePlans:
        fallback = Limit(limits.rate_per_second, limits.rate_burst)
        if limits.plans_file is None:
            return cls(PlansFile(), fallback)
        return cls(load_plans(limits.plans_file), fallback)

    def buckets(self, tenant: str, operation: str) -> tuple[tuple[str, Limit], ...]:
        """The bucket keys and limits for one request."""
        name = self._plans.tenants.get(tenant, self._plans.default_plan)
        plan = self._plans.plans.get(name) if name is not None else None
        if plan is None:
            return ((f"tenant:{tenant}", self._fallback),)
        tenant_bucket = (f"tenant:{tenant}", plan.limit())
        per_operation = plan.operations.get(operation)
        if per_operation is None:
            return (tenant_bucket,)
        return (tenant_bucket, (f"op:{len(tenant)}:{tenant}:{operation}", per_operation.limit()))


def load_plans(path: Path) -> PlansFile:
    """Read and validate a plans file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"LIMITS_PLANS_FILE {path} is not readable") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"LIMITS_PLANS_FILE {path} is not valid TOML: {exc}") from exc
    try:
        return PlansFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(
            f"LIMITS_PLANS_FILE {path} is not a valid plans file: {exc}"
        ) from exc
