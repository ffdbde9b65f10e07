"""How hard and how long each scenario pushes: ``short`` for CI, ``long`` for release checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

KillPoint = Literal["before_insert", "after_insert", "after_publish", "after_ack"]


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    #: Messages per second the load producer publishes, in every scenario.
    rate: float
    #: Seconds of load in a scenario; longer where the fault itself lasts longer.
    seconds: float
    #: One poison message in this many (the poison scenario sends one in three).
    poison_every: int
    #: The fault starts this far into the load.
    fault_at_s: float
    kill_points: tuple[KillPoint, ...]
    #: Times a worker is killed at its point before it runs without the fault.
    kill_rounds: int
    #: Batches that pass a kill point unharmed before each kill.
    kill_after_batches: int
    sigterm_rounds: int
    broker_down_s: float
    clickhouse_outages_s: tuple[float, ...]
    redis_down_s: float
    #: ``LIMITS_ON_REDIS_UNAVAILABLE`` values, one scenario each.
    redis_policies: tuple[str, ...]
    rebalance_rounds: int
    #: Longest one scenario may take, load, fault, drain and measurement included.
    deadline_s: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


SHORT = Profile(
    name="short",
    rate=150,
    seconds=14,
    poison_every=20,
    fault_at_s=4,
    kill_points=("before_insert", "after_insert", "after_publish", "after_ack"),
    kill_rounds=1,
    kill_after_batches=20,
    sigterm_rounds=1,
    broker_down_s=5,
    # The 60 s outage is the long profile's; CI checks a 20 s one.
    clickhouse_outages_s=(5, 20),
    redis_down_s=10,
    redis_policies=("allow",),
    rebalance_rounds=1,
    deadline_s=180,
)

#: The release check: the same scenarios, at twice the rate, for longer, and more often.
LONG = replace(
    SHORT,
    name="long",
    rate=300,
    seconds=45,
    fault_at_s=8,
    kill_rounds=3,
    kill_after_batches=40,
    sigterm_rounds=3,
    broker_down_s=15,
    clickhouse_outages_s=(5, 60),
    redis_policies=("allow", "reject"),
    rebalance_rounds=2,
    deadline_s=600,
)

PROFILES = {profile.name: profile for profile in (SHORT, LONG)}
