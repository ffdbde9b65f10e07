"""Schema migrations, applied to embedded chDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from worker.clickhouse.migrate import (
    Migration,
    Retention,
    applied_versions,
    apply_retention,
    check,
    load_migrations,
    migrate,
)
from worker.errors import ConfigurationError
from worker.flow.output import DEAD_LETTER_COLUMNS, REQUEST_COLUMNS, PartitionRows
from worker.settings import ClickHouseSettings

OpenChdb = Callable[[ClickHouseSettings], Any]


def test_migrate_applies_everything_once_and_is_then_a_no_op(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    versions = [migration.version for migration in load_migrations()]

    assert migrate(client, settings.database) == versions
    assert migrate(client, settings.database) == []

    recorded = client.query(
        f"SELECT version, name FROM {settings.database}.schema_migrations FINAL ORDER BY version"  # noqa: S608
    ).result_rows
    assert [row[0] for row in recorded] == versions
    assert [row[1] for row in recorded] == [m.name for m in load_migrations()]


def test_the_requests_table_has_the_row_columns_in_insert_order(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    migrate(client, settings.database)
    columns = client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'requests' "
        "ORDER BY position",
        parameters={"db": settings.database},
    ).result_rows
    assert tuple(name for (name,) in columns) == REQUEST_COLUMNS


def test_migrations_are_per_database(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> None:
    first, second = chdb_settings(), chdb_settings()
    client = open_chdb(first)
    assert migrate(client, first.database) != []
    assert migrate(client, second.database) != []
    tables = client.query(
        "SELECT database FROM system.tables "
        "WHERE name = 'requests' AND database IN ({a:String}, {b:String})",
        parameters={"a": first.database, "b": second.database},
    ).result_rows
    assert sorted(db for (db,) in tables) == sorted([first.database, second.database])


def test_migrations_are_numbered_without_gaps_or_repeats() -> None:
    versions = [migration.version for migration in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_statements_drop_comments_split_on_semicolons_and_name_the_database() -> None:
    migration = Migration(
        7,
        "example",
        "-- a comment; with a semicolon\nCREATE TABLE {database}.a (x UInt8) ENGINE = Memory;\n"
        "  -- indented comment\nCREATE TABLE {database}.b (y UInt8) ENGINE = Memory;\n\n",
    )
    assert migration.statements("db1") == [
        "CREATE TABLE db1.a (x UInt8) ENGINE = Memory",
        "CREATE TABLE db1.b (y UInt8) ENGINE = Memory",
    ]


def tables_of(client: Any, database: str) -> dict[str, str]:
    return dict(
        client.query(
            "SELECT name, engine FROM system.tables WHERE database = {db:String}",
            parameters={"db": database},
        ).result_rows
    )


def engine_full(client: Any, database: str, table: str) -> str:
    return str(
        client.query(
            "SELECT engine_full FROM system.tables "
            "WHERE database = {db:String} AND name = {t:String}",
            parameters={"db": database, "t": table},
        ).result_rows[0][0]
    )


def test_migrate_creates_every_table_and_view(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    migrate(client, settings.database)
    assert tables_of(client, settings.database) == {
        "schema_migrations": "ReplacingMergeTree",
        "requests": "ReplacingMergeTree",
        "dead_letters": "ReplacingMergeTree",
        "usage_per_minute": "AggregatingMergeTree",
        "usage_per_minute_mv": "MaterializedView",
        "errors_per_minute": "SummingMergeTree",
        "errors_per_minute_mv": "MaterializedView",
    }


def test_the_dead_letters_table_has_the_row_columns_in_insert_order(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    migrate(client, settings.database)
    columns = client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'dead_letters' "
        "ORDER BY position",
        parameters={"db": settings.database},
    ).result_rows
    assert tuple(name for (name,) in columns) == DEAD_LETTER_COLUMNS


def test_every_table_written_to_deduplicates_tokens_and_is_partitioned_by_day(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    migrate(client, settings.database)
    for table in ("requests", "dead_letters", "usage_per_minute", "errors_per_minute"):
        engine = engine_full(client, settings.database, table)
        # Without the window a plain MergeTree ignores insert_deduplication_token.
        assert "non_replicated_deduplication_window = 10000" in engine, table
        assert "PARTITION BY toYYYYMMDD(" in engine, table


def test_every_statement_can_run_again_after_an_interrupted_migration(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    migrate(client, settings.database)
    for migration in load_migrations():
        for statement in migration.statements(settings.database):
            client.command(statement)
    assert migrate(client, settings.database) == []


def test_a_database_never_migrated_has_no_versions_and_fails_the_check(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    assert applied_versions(client, settings.database) is None
    with pytest.raises(ConfigurationError, match="worker db migrate") as caught:
        check(client, settings.database)
    assert "0001_requests" in caught.value.message
    migrate(client, settings.database)
    check(client, settings.database)
    assert applied_versions(client, settings.database) == {m.version for m in load_migrations()}


def test_retention_sets_changes_and_removes_each_ttl_only_when_needed(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    db = settings.database
    migrate(client, db, Retention(requests_days=7, dead_letters_days=3, usage_days=30))
    assert "TTL toDateTime(received_at) + toIntervalDay(7)" in engine_full(client, db, "requests")
    assert "TTL toDateTime(received_at) + toIntervalDay(3)" in engine_full(
        client, db, "dead_letters"
    )
    assert "TTL minute + toIntervalDay(30)" in engine_full(client, db, "usage_per_minute")
    assert "TTL minute + toIntervalDay(30)" in engine_full(client, db, "errors_per_minute")

    same = Retention(requests_days=7, dead_letters_days=3, usage_days=30)
    assert apply_retention(client, db, same) == []
    changed = apply_retention(client, db, Retention(requests_days=70, dead_letters_days=3))
    assert changed == ["requests", "usage_per_minute", "errors_per_minute"]
    assert "toIntervalDay(70)" in engine_full(client, db, "requests")
    assert apply_retention(client, db, Retention(0, 0, 0)) == [
        "requests",
        "dead_letters",
        "usage_per_minute",
        "errors_per_minute",
    ]
    assert " TTL " not in engine_full(client, db, "requests")
    assert apply_retention(client, db, Retention(0, 0, 0)) == []


def insert_requests(client: Any, database: str, part: PartitionRows) -> None:
    """One insert of ``part``'s rows, as one part of the table."""
    client.insert(
        f"{database}.requests",
        [list(column) for column in zip(*part.rows, strict=True)],
        column_names=REQUEST_COLUMNS,
        column_oriented=True,
    )


@pytest.fixture
def migrated(
    open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]
) -> tuple[Any, str]:
    """A chDB client, and its database with every migration applied."""
    settings = chdb_settings()
    client = open_chdb(settings)
    migrate(client, settings.database)
    return client, settings.database


def test_the_high_water_read_is_answered_by_the_positions_projection(
    migrated: tuple[Any, str], make_slice: Callable[..., PartitionRows]
) -> None:
    client, database = migrated
    insert_requests(client, database, make_slice(range(30)))
    plan = client.query(
        f"EXPLAIN SELECT source_partition, max(source_offset) FROM {database}.requests "  # noqa: S608
        "WHERE source_topic = 'requests' GROUP BY source_partition"
    ).result_rows
    assert any("ReadFromMergeTree (source_positions)" in line for (line,) in plan), plan


def test_the_stored_offsets_lookup_is_narrowed_by_the_source_offset_index(
    migrated: tuple[Any, str], make_slice: Callable[..., PartitionRows]
) -> None:
    client, database = migrated
    for offsets in (range(30), range(30, 60)):
        insert_requests(client, database, make_slice(offsets))
    plan = "\n".join(
        line
        for (line,) in client.query(
            f"EXPLAIN indexes = 1 SELECT DISTINCT source_offset FROM {database}.requests "  # noqa: S608
            "WHERE source_topic = 'requests' AND source_partition = 0 "
            "AND source_offset BETWEEN 40 AND 45"
        ).result_rows
    )
    assert "source_offset_minmax" in plan, plan
    # Of the two parts, the one holding offsets 0 to 29 is skipped.
    index = plan[plan.index("source_offset_minmax") :]
    assert "Parts: 1/2" in index, plan


def test_upgrading_a_database_with_rows_backfills_the_usage_views_once(
    open_chdb: OpenChdb,
    chdb_settings: Callable[[], ClickHouseSettings],
    make_slice: Callable[..., PartitionRows],
) -> None:
    settings = chdb_settings()
    client = open_chdb(settings)
    db = settings.database
    first = [m for m in load_migrations() if m.version == 1]
    client.command(f"CREATE DATABASE {db}")
    for statement in first[0].statements(db):
        client.command(statement)
    part = make_slice(range(30))
    # The columns of migration 1: later migrations add the cache's.
    v1_columns = REQUEST_COLUMNS[: REQUEST_COLUMNS.index("cache_key")]
    client.insert(
        f"{db}.requests",
        [list(column) for column in zip(*part.rows, strict=True)][: len(v1_columns)],
        column_names=v1_columns,
        column_oriented=True,
    )
    client.command(
        f"CREATE TABLE {db}.schema_migrations (version UInt32, name String, "
        "applied_at DateTime DEFAULT now()) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    client.insert(f"{db}.schema_migrations", [[1, "requests"]], column_names=["version", "name"])

    assert migrate(client, db) == [m.version for m in load_migrations()][1:]
    total = f"SELECT sum(requests) FROM {db}.usage_per_minute"  # noqa: S608
    assert client.query(total).result_rows == [(30,)]
    # The backfill of an interrupted migration, run again, does not count twice.
    (usage,) = [m for m in load_migrations() if m.name == "usage_per_minute"]
    for statement in usage.statements(db):
        client.command(statement)
    assert client.query(total).result_rows == [(30,)]
