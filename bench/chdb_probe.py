"""How much resident memory chDB alone takes: a process that only opens a chDB client.

Prints one JSON object: the RSS once Python, pydantic and the worker's settings
are loaded, and the RSS and peak RSS after importing chDB and clickhouse-connect,
opening a client on an empty directory, applying the worker's migrations and
running one query. The difference is chDB's share of a worker's RSS; run with a
fresh directory:

    python -m bench.chdb_probe DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from bench.procstat import memory_mb


def main() -> None:
    import os  # noqa: PLC0415 - every import here is measured, so each is placed

    from worker.settings import ClickHouseSettings  # noqa: PLC0415

    pid = os.getpid()
    # Measured after pydantic and the settings are loaded: those are not chDB's.
    before = memory_mb(pid)["VmRSS"]
    from worker.clickhouse.client import connect  # noqa: PLC0415 - loads chDB, after `before`
    from worker.clickhouse.migrate import migrate  # noqa: PLC0415

    settings = ClickHouseSettings(path=Path(sys.argv[1]))
    client = connect(settings)
    migrate(client, settings.database)
    client.query("SELECT 1")
    after = memory_mb(pid)
    client.close()
    sys.stdout.write(
        orjson.dumps(
            {
                "before_rss_mb": before,
                "after_rss_mb": after["VmRSS"],
                "after_hwm_mb": after["VmHWM"],
                "chdb_share_mb": after["VmRSS"] - before,
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
