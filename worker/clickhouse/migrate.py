"""Versioned, idempotent schema migrations, applied at start-up and by ``worker db migrate``."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, database: str) -> list[str]:
        """The migration's statements with the database name filled in."""
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip().replace("{database}", database) for s in body.split(";") if s.strip()]


def load_migrations() -> list[Migration]:
    """Every migration shipped in ``worker/clickhouse/migrations``, by version."""
    found = []
    for entry in resources.files("worker.clickhouse").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate(client: Any, database: str) -> list[int]:
    """Apply the migrations ``database`` lacks; return the versions applied now."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    # ``database`` is a validated identifier (ClickHouseSettings.database).
    versions = client.query(f"SELECT version FROM {database}.schema_migrations")  # noqa: S608
    done = {row[0] for row in versions.result_rows}
    applied = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements(database):
            client.command(statement)
        client.insert(
            f"{database}.schema_migrations",
            [[migration.version, migration.name]],
            column_names=["version", "name"],
        )
        log.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration.version)
    return applied
