"""``worker db``: ClickHouse schema migrations and read-only queries for analysts."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click
import orjson

from worker.clickhouse.client import connect, connect_reader
from worker.clickhouse.migrate import Retention
from worker.clickhouse.migrate import migrate as apply_migrations
from worker.settings import load_settings


@click.group()
def db() -> None:
    """The ClickHouse database (embedded chDB unless CLICKHOUSE_URL is set).

    Embedded chDB is locked by a running worker: `query` then goes through the
    worker's read-only ClickHouse HTTP endpoint; `migrate` needs the worker stopped.
    """


@db.command()
def migrate() -> None:
    """Apply the schema migrations the database lacks, and the retention settings (idempotent)."""
    from rich.console import Console

    settings = load_settings()
    with Console(stderr=True).status(f"migrating {settings.clickhouse.describe()}..."):
        client = connect(settings.clickhouse)
        try:
            applied = apply_migrations(
                client, settings.clickhouse.database, Retention.from_settings(settings.clickhouse)
            )
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


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    """``name=value`` pairs as query parameters, bound to ``{name:Type}`` in the SQL."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"{pair!r} is not name=value", param_hint="--param")
        params[name] = value
    return params


@db.command()
@click.argument("sql", required=False)
@click.option(
    "--file",
    "-f",
    "sql_file",
    type=click.File("r"),
    help="Read the SQL from this file ('-' for standard input) instead of the argument.",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A query parameter, used in the SQL as {NAME:Type} (repeatable).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="table: for people; csv: with a header row; json: one object per row.",
)
def query(sql: str | None, sql_file: Any, params: tuple[str, ...], fmt: str) -> None:
    """Run read-only SQL (readonly=1: nothing can be written) and print the result.

    Tables are those of CLICKHOUSE_DATABASE (requests, dead_letters,
    usage_per_minute, errors_per_minute); docs/analytics.md has example queries.
    While a worker runs on embedded chDB, the query goes to its read-only HTTP
    endpoint (found through the endpoint file in WORKER_DATA_DIR); otherwise chDB
    or the CLICKHOUSE_URL server is opened directly. Values go in as parameters,
    never pasted into the SQL:

        worker db query -p tenant=acme \\
          "SELECT count() FROM requests WHERE tenant = {tenant:String}"
    """
    from clickhouse_connect.driver.exceptions import ClickHouseError

    if (sql is None) == (sql_file is None):
        raise click.UsageError("give the SQL either as the argument or with --file")
    text = sql if sql is not None else sql_file.read()
    bound = parse_params(params)
    settings = load_settings()
    client, source = connect_reader(settings)
    try:
        # readonly=1 cannot be lifted by the query itself (SETTINGS or SET are refused).
        result = client.query(text, parameters=bound or None, settings={"readonly": 1})
    except ClickHouseError as exc:
        raise click.ClickException(f"query refused on {source}: {str(exc).strip()}") from exc
    finally:
        client.close()
    print_result(list(result.column_names), list(result.result_rows), fmt)


def _print_statements(statements: list[str]) -> None:
    click.echo("\n\n".join(f"{statement};" for statement in statements))


@db.command("cluster-sql")
@click.option("--cluster", required=True, help="The cluster name of the servers' remote_servers.")
def cluster_sql(cluster: str) -> None:
    """Print the schema for a ClickHouse cluster: Replicated and Distributed tables, ON CLUSTER.

    The same versions as the single-server migrations, recorded in the same
    schema_migrations table; run the output once with clickhouse-client
    --multiquery as an administrator, then run workers with
    CLICKHOUSE_MIGRATE_ON_START=false. See worker/clickhouse/cluster/README.md.
    """
    from worker.clickhouse.templates import cluster_sql as render

    settings = load_settings().clickhouse
    _print_statements(render(settings.database, cluster, Retention.from_settings(settings)))


@db.command("grants-sql")
@click.option(
    "--tenant", "tenants", multiple=True, help="Add a row-policy role for this tenant (repeatable)."
)
def grants_sql(tenants: tuple[str, ...]) -> None:
    """Print least-privilege roles: a writer that only inserts, read-only analysts per tenant.

    Review, create the users, and run the output as an administrator of a
    ClickHouse server (docs/analytics.md, "Access for production").
    """
    from worker.clickhouse.templates import grants_sql as render

    _print_statements(render(load_settings().clickhouse.database, list(tenants)))


@db.command()
@click.argument("values", nargs=-1)
def decrypt(values: tuple[str, ...]) -> None:
    """Open the encrypted sensitive fields of requests rows (needs SECURITY_MASTER_KEY).

    Each VALUE (or each line of standard input, without arguments) is an
    `enc:v1:...` value or a JSON document holding some: a params or result
    column, or a row printed by `worker db query --format json`. Each is
    printed back as one JSON line with the values opened, and the columns that
    hold JSON parsed:

        worker db query --format json -p id=r-1 \\
          "SELECT request_id, params, result FROM requests WHERE request_id = {id:String}" \\
          | worker db decrypt

    Operator action: what this prints is the plaintext the rows keep from
    analysts; handle it accordingly.
    """
    from worker.errors import ConfigurationError
    from worker.operations.encryption import PREFIX, FieldCipher, open_all

    try:
        cipher = FieldCipher.from_settings(load_settings().security)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    if cipher is None:
        raise click.ClickException(
            "no master key: set SECURITY_MASTER_KEY or SECURITY_MASTER_KEY_FILE to the key "
            "the rows were stored under"
        )
    lines = values or tuple(line for line in sys.stdin.read().splitlines() if line.strip())
    for line in lines:
        text = line.strip()
        try:
            document = text if text.startswith(PREFIX) else orjson.loads(text)
            opened = open_all(document, cipher)
        except orjson.JSONDecodeError as exc:
            raise click.ClickException(f"neither an encrypted value nor JSON: {text[:80]}") from exc
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from exc
        sys.stdout.write(orjson.dumps(opened, default=str).decode() + "\n")
