"""Schema migrations, applied to embedded chDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.clickhouse.migrate import Migration, load_migrations, migrate
from worker.flow.output import REQUEST_COLUMNS
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


def test_migrations_are_numbered_from_one_without_repeats() -> None:
    # Gaps are allowed: a number may be reserved by work merged later, and migrate()
    # applies every version a database lacks, not only those above its highest.
    versions = [migration.version for migration in load_migrations()]
    assert versions[0] == 1
    assert versions == sorted(set(versions))


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
