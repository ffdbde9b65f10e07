"""One place that knows how to open a ClickHouse client: embedded chDB or a server URL."""

from __future__ import annotations

from typing import Any

import clickhouse_connect

from worker.errors import ConfigurationError, DatabaseError
from worker.settings import ClickHouseSettings


def connect(settings: ClickHouseSettings) -> Any:
    """A clickhouse-connect ``Client``; the same API whichever backend is configured.

    Embedded mode opens chDB on ``settings.path``: chDB locks that directory, so
    only one process at a time may hold it (see docs/architecture.md).
    """
    try:
        if settings.url is None:
            settings.path.mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(dsn=f"chdb://{settings.path.resolve()}")
        return clickhouse_connect.get_client(dsn=settings.url.get_secret_value())
    except ValueError as exc:
        raise ConfigurationError(f"CLICKHOUSE_URL is not usable: {exc}") from exc
    except Exception as exc:
        raise DatabaseError(
            f"cannot open ClickHouse at {settings.describe()}: {exc}",
            details={"target": settings.describe()},
        ) from exc
