"""``worker db``: ClickHouse schema migrations and read-only queries."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click
import orjson

from worker.clickhouse.client import connect
from worker.clickhouse.migrate import migrate as apply_migrations
from worker.settings import load_settings


@click.group()
def db() -> None:
    """The ClickHouse database (embedded chDB unless CLICKHOUSE_URL is set).

    Embedded chDB is locked by a running worker: stop it before using these.
    """


@db.command()
def migrate() -> None:
    """Apply the schema migrations the database lacks (idempotent)."""
    from rich.console import Console

    settings = load_settings()
    with Console(stderr=True).status(f"migrating {settings.clickhouse.describe()}..."):
        client = connect(settings.clickhouse)
        try:
            applied = apply_migrations(client, settings.clickhouse.database)
        finally:
            client.close()
    click.echo(f"applied {applied}" if applied else "schema is up to date")


def print_result(names: list[str], rows: list[tuple[Any, ...]], fmt: str) -> None:
    """Print a query result as a table, CSV or JSON lines."""
    if fmt == "json":
        for row in rows:
            sys.stdout.write(
                orjson.dumps(dict(zip(names, row, strict=True)), default=str).decode() + "\n"
            )
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows(rows)
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*names)
        for row in rows:
            table.add_row(*(str(value) for value in row))
        Console().print(table)


@db.command()
@click.argument("sql")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table: for people; csv: with a header row; json: one object per row.",
)
def query(sql: str, fmt: str) -> None:
    """Run read-only SQL (readonly=1: nothing can be written) and print the result."""
    settings = load_settings()
    client = connect(settings.clickhouse)
    try:
        client.database = settings.clickhouse.database
        result = client.query(sql, settings={"readonly": 1})
    finally:
        client.close()
    print_result(list(result.column_names), list(result.result_rows), fmt)
