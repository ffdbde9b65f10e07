"""What a benchmark run was asked to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Mode = Literal["single", "scale", "paced"]


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """The options of one run, recorded as given in ``bench-results.json``."""

    n: int = 200_000
    invalid_share: float = 0.05
    cache_hit_share: float = 0.3
    signed: bool = True
    mode: Mode = "single"
    repeat: int = 2
    paced_seconds: float = 30.0
    #: The offered rate of ``paced`` mode, requests/s (single mode: half the maximum).
    paced_rate: float | None = None
    cache_entries: int = 1_000_000
    worker_env: tuple[tuple[str, str], ...] = ()
    out: Path = Path("bench-results.json")
    chart: Path = Path("bench-chart.png")
    compare_revs: tuple[str, ...] = ()
    profile_dir: Path | None = None
    keep: bool = False
    bootstrap_servers: str = "127.0.0.1:9092"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
            elif isinstance(value, tuple):
                data[key] = list(value)
        return data
