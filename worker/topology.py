"""The topic declarations in ``topics/``, read at start-up."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.errors import ConfigurationError

Role = Literal[
    "requests",
    "responses",
    "dead_letters",
    "cache_entries",
    "cache_index",
    "cache_invalidations",
    "reference_products",
    "reference_rates",
]


class TopicSpec(BaseModel):
    """One declared topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._\-]+$")]
    role: Role
    partitions: Annotated[int, Field(ge=1, le=10_000)]
    replication_factor: Annotated[int, Field(ge=1, le=32)]
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = "delete"
    retention_ms: Annotated[int, Field(ge=-1)] = 604_800_000
    key: str
    value: str

    def config(self) -> dict[str, str]:
        """The broker-side topic configuration this declaration implies."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


class Topology(BaseModel):
    """Every declared topic, looked up by role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: list[TopicSpec]

    def by_role(self, role: Role) -> TopicSpec:
        """The topic that plays ``role``."""
        for spec in self.topic:
            if spec.role == role:
                return spec
        raise ConfigurationError(f"no topic with role {role!r} is declared")


def load_topology(path: Path) -> Topology:
    """Read and validate the declarations in ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"topic declarations not found at {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path} is not valid TOML: {exc}") from exc
    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(f"{path} is not a valid topic declaration: {exc}") from exc
    roles = [spec.role for spec in topology.topic]
    if len(set(roles)) != len(roles):
        raise ConfigurationError(f"{path} declares a role twice: {roles}")
    return topology
