"""Settings for tests: the defaults, with files under one directory, and some models replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.settings import (
    CacheSettings,
    ClickHouseSettings,
    KafkaSettings,
    LimitsSettings,
    RedisSettings,
    SecuritySettings,
    Settings,
    WorkerSettings,
)


def settings_under(root: Path, **models: Any) -> Settings:
    """Default settings with chDB and the data dir under ``root``; ``models`` replace the rest."""
    chosen: dict[str, Any] = {
        "kafka": KafkaSettings(),
        "clickhouse": ClickHouseSettings(url=None, path=root / "chdb"),
        "redis": RedisSettings(),
        "limits": LimitsSettings(),
        "security": SecuritySettings(),
        "worker": WorkerSettings(data_dir=root / "data"),
        "cache": CacheSettings(),
        **models,
    }
    return Settings(**chosen)
