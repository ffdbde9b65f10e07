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


def default_settings(**models: Any) -> Settings:
    """Default settings with embedded chDB (no server URL); ``models`` replace the rest."""
    chosen: dict[str, Any] = {
        "kafka": KafkaSettings(),
        "clickhouse": ClickHouseSettings(url=None),
        "redis": RedisSettings(),
        "limits": LimitsSettings(),
        "security": SecuritySettings(),
        "worker": WorkerSettings(),
        "cache": CacheSettings(),
        **models,
    }
    return Settings(**chosen)


def settings_under(root: Path, **models: Any) -> Settings:
    """Default settings with chDB and the data dir under ``root``; ``models`` replace the rest."""
    return default_settings(
        **{
            "clickhouse": ClickHouseSettings(url=None, path=root / "chdb"),
            "worker": WorkerSettings(data_dir=root / "data"),
            **models,
        }
    )
