"""Versioned, idempotent schema migrations, applied at start-up and by ``worker db migrate``.

Migrations are the numbered ``migrations/NNNN_name.sql`` files, applied in order
and recorded in ``schema_migrations``; each statement is idempotent on its own
(``IF NOT EXISTS``, guarded backfills), so a migration interrupted half-way is
simply applied again. Retention is not a migration: the TTL of each table
follows the ``CLICKHOUSE_*_RETENTION_DAYS`` settings, and :func:`apply_retention`
changes it only when it differs. The same files run on embedded chDB and on a
single ClickHouse server; ``cluster/`` holds the variant for a cluster.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from worker.errors import ConfigurationError
from worker.settings import ClickHouseSettings

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# ClickHouse's UNKNOWN_TABLE and UNKNOWN_DATABASE: the schema was never migrated.
_MISSING = re.compile(r"\bCode: (60|81)\b|UNKNOWN_TABLE|UNKNOWN_DATABASE")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, database: str, **values: str) -> list[str]:
        """The statements, with ``{database}`` and each ``{name}`` of ``values`` filled in."""
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        filled = {"database": database, **values}
        statements = []
        for statement in body.split(";"):
            text = statement.strip()
            for name, value in filled.items():
                text = text.replace(f"{{{name}}}", value)
            if text:
                statements.append(text)
        return statements


@dataclass(frozen=True, slots=True)
class Retention:
    """How many days each table keeps its rows; 0 keeps them forever."""

    requests_days: int = 90
    dead_letters_days: int = 30
    usage_days: int = 400

    @classmethod
    def from_settings(cls, settings: ClickHouseSettings) -> Retention:
        return cls(
            requests_days=settings.retention_days,
            dead_letters_days=settings.dead_letter_retention_days,
            usage_days=settings.usage_retention_days,
        )

    def ttl(self) -> dict[str, tuple[str, int]]:
        """Table -> (the time expression its TTL is on, days)."""
        return {
            "requests": ("toDateTime(received_at)", self.requests_days),
            "dead_letters": ("toDateTime(received_at)", self.dead_letters_days),
            "usage_per_minute": ("minute", self.usage_days),
            "errors_per_minute": ("minute", self.usage_days),
        }


def load_migrations(directory: str = "migrations") -> list[Migration]:
    """Every migration shipped in ``worker/clickhouse/<directory>``, by version.

    ``migrations`` is the single-server (and chDB) schema; ``cluster`` the same
    versions for a cluster, rendered by ``worker db cluster-sql``.
    """
    found = []
    for entry in resources.files("worker.clickhouse").joinpath(directory).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def applied_versions(client: Any, database: str) -> set[int] | None:
    """The versions recorded in ``database``, or None if it was never migrated.

    Only a SELECT: a writer without DDL rights can check the schema this way.
    """
    try:
        # ``database`` is a validated identifier (ClickHouseSettings.database).
        result = client.query(f"SELECT version FROM {database}.schema_migrations")  # noqa: S608
    except Exception as exc:
        if _MISSING.search(str(exc)):
            return None
        raise
    return {int(row[0]) for row in result.result_rows}


def pending(client: Any, database: str) -> list[Migration]:
    """The migrations ``database`` lacks, in order."""
    done = applied_versions(client, database) or set()
    return [m for m in load_migrations() if m.version not in done]


def migrate(client: Any, database: str, retention: Retention | None = None) -> list[int]:
    """Apply the migrations ``database`` lacks (and ``retention``); return the versions applied.

    Issues no DDL when the schema is current and the TTLs already match.
    """
    if applied_versions(client, database) is None:
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        client.command(
            f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
            "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
            "ENGINE = ReplacingMergeTree ORDER BY version"
        )
    applied = []
    for migration in pending(client, database):
        for statement in migration.statements(database):
            client.command(statement)
        client.insert(
            f"{database}.schema_migrations",
            [[migration.version, migration.name]],
            column_names=["version", "name"],
        )
        log.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration.version)
    if retention is not None:
        apply_retention(client, database, retention)
    return applied


def check(client: Any, database: str) -> None:
    """Fail unless every migration is applied (for a writer that may not run DDL)."""
    missing = pending(client, database)
    if missing:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in missing)
        raise ConfigurationError(
            f"ClickHouse database {database!r} lacks migrations {names}: run `worker db migrate` "
            "as a user allowed to change the schema, or set CLICKHOUSE_MIGRATE_ON_START=true"
        )


def apply_retention(client: Any, database: str, retention: Retention) -> list[str]:
    """Set each table's TTL to ``retention`` where it differs; return the tables changed.

    Existing parts are not rewritten (``materialize_ttl_after_modify = 0``): the
    new TTL applies as parts merge, and whole day partitions are dropped once
    every row in them expired (``ttl_only_drop_parts``).
    """
    engines = dict(
        client.query(
            "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
    )
    changed = []
    for table, (column, days) in retention.ttl().items():
        engine = engines.get(table)
        if engine is None:
            continue
        has_ttl = " TTL " in f" {engine} "
        if days == 0:
            if not has_ttl:
                continue
            client.command(f"ALTER TABLE {database}.{table} REMOVE TTL")
        else:
            if f"TTL {column} + toIntervalDay({days})" in engine:
                continue
            client.command(
                f"ALTER TABLE {database}.{table} MODIFY TTL {column} + INTERVAL {days} DAY",
                settings={"materialize_ttl_after_modify": 0},
            )
        log.info("retention of %s.%s set to %s days", database, table, days or "unlimited")
        changed.append(table)
    return changed
