"""The SQL the worker prints for a cluster and for access rights, parsed by ClickHouse itself.

A cluster and access management cannot run here; ClickHouse's own parser
(``formatQuery`` in chDB) checks every statement, and the structure is compared
with the single-server migrations that do run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from worker.clickhouse.migrate import Retention, load_migrations, migrate
from worker.clickhouse.templates import cluster_sql, grants_sql, tenant_name
from worker.errors import ConfigurationError
from worker.settings import ClickHouseSettings

OpenChdb = Callable[[ClickHouseSettings], Any]


def parses(client: Any, statement: str) -> str:
    """The statement as ClickHouse formats it; raises on a syntax error."""
    return str(
        client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][
            0
        ]
    )


def columns_of(create: str) -> list[str]:
    """The column names of a CREATE TABLE statement with an explicit column list."""
    body = create[create.index("(") + 1 : create.index("\n)")]
    return [line.split()[0] for line in body.strip().splitlines() if line.strip()]


@pytest.fixture
def chdb(open_chdb: OpenChdb, chdb_settings: Callable[[], ClickHouseSettings]) -> Any:
    return open_chdb(chdb_settings())


class TestClusterSql:
    def test_every_statement_parses(self, chdb: Any) -> None:
        statements = cluster_sql("worker", "prod", Retention(90, 30, 0))
        assert len(statements) > 20
        for statement in statements:
            parses(chdb, statement)

    def test_the_versions_are_those_of_the_single_server_migrations(self) -> None:
        single = [(m.version, m.name) for m in load_migrations()]
        assert [(m.version, m.name) for m in load_migrations("cluster")] == single
        for migration in load_migrations("cluster"):
            recorded = migration.statements("worker", cluster="prod")[-1]
            assert recorded == (
                "INSERT INTO worker.schema_migrations (version, name) "  # noqa: S608 - expected text
                f"VALUES ({migration.version}, '{migration.name}')"
            )

    def test_every_ddl_statement_runs_on_the_whole_cluster(self) -> None:
        for statement in cluster_sql("worker", "prod"):
            if not statement.startswith("INSERT"):
                assert "ON CLUSTER 'prod'" in statement, statement

    def test_stored_tables_are_replicated_and_read_through_distributed_ones(self) -> None:
        engines = {}
        for statement in cluster_sql("worker", "prod"):
            table = re.match(r"CREATE TABLE IF NOT EXISTS worker\.(\w+)", statement)
            if table:
                engines[table[1]] = re.search(r"ENGINE = (\w+)", statement)[1]  # type: ignore[index]
        for name, engine in engines.items():
            expected = "Distributed" if not name.endswith("_local") else "Replicated"
            if name == "schema_migrations":
                expected = "Replicated"
            assert engine.startswith(expected), (name, engine)
        assert {n for n in engines if n.endswith("_local")} == {
            "requests_local",
            "dead_letters_local",
            "usage_per_minute_local",
            "errors_per_minute_local",
        }

    def test_local_tables_have_the_columns_of_the_single_server_tables(
        self, chdb: Any, chdb_settings: Callable[[], ClickHouseSettings]
    ) -> None:
        database = chdb_settings().database
        migrate(chdb, database)
        creates = {
            re.match(r"CREATE TABLE IF NOT EXISTS worker\.(\w+)_local", s)[1]: s  # type: ignore[index]
            for s in cluster_sql("worker", "prod")
            if re.match(r"CREATE TABLE IF NOT EXISTS worker\.\w+_local", s)
        }
        statements = cluster_sql("worker", "prod")
        for table, create in creates.items():
            # Columns later migrations add, in the order they add them.
            added = [
                found[1]
                for s in statements
                if (
                    found := re.match(
                        rf"ALTER TABLE worker\.{table}_local ON CLUSTER 'prod'\s+"
                        r"ADD COLUMN IF NOT EXISTS (\w+)",
                        s,
                    )
                )
            ]
            single = [
                name
                for (name,) in chdb.query(
                    "SELECT name FROM system.columns WHERE database = {db:String} "
                    "AND table = {t:String} ORDER BY position",
                    parameters={"db": database, "t": table},
                ).result_rows
            ]
            assert columns_of(create) + added == single, table

    def test_retention_is_set_on_the_local_tables(self) -> None:
        statements = cluster_sql("worker", "prod", Retention(7, 3, 0))
        assert (
            "ALTER TABLE worker.requests_local ON CLUSTER 'prod' MODIFY TTL "
            "toDateTime(received_at) + INTERVAL 7 DAY SETTINGS materialize_ttl_after_modify = 0"
        ) in statements
        assert "ALTER TABLE worker.usage_per_minute_local ON CLUSTER 'prod' REMOVE TTL" in (
            statements
        )

    def test_a_cluster_name_cannot_inject_sql(self) -> None:
        with pytest.raises(ConfigurationError):
            cluster_sql("worker", "prod'; DROP TABLE x; --")


class TestGrantsSql:
    def test_every_statement_parses(self, chdb: Any) -> None:
        for statement in grants_sql("worker", ["acme", "globex.eu"]):
            parses(chdb, statement)

    def test_the_writer_may_only_insert_and_read_positions_and_versions(self) -> None:
        grants = [s for s in grants_sql("worker", []) if s.startswith("GRANT")]
        writer = sorted(s for s in grants if s.endswith("TO worker_writer"))
        assert writer == [
            "GRANT INSERT ON worker.dead_letters TO worker_writer",
            "GRANT INSERT ON worker.requests TO worker_writer",
            "GRANT SELECT ON worker.schema_migrations TO worker_writer",
            "GRANT SELECT(source_topic, source_partition, source_offset) "
            "ON worker.requests TO worker_writer",
            "GRANT SELECT(tenant, operation, received_at, cache_key, cache_params) "
            "ON worker.requests TO worker_writer",
        ]

    def test_analysts_may_only_select_and_stay_read_only(self) -> None:
        statements = grants_sql("worker", ["acme"])
        analyst = [s for s in statements if s.startswith("GRANT") and "analyst" in s]
        assert analyst == ["GRANT SELECT ON worker.* TO worker_analyst"]
        (profile,) = [s for s in statements if "SETTINGS PROFILE IF NOT EXISTS worker_analyst" in s]
        assert "readonly = 2 MIN 1 MAX 2" in profile

    def test_each_tenant_sees_only_its_rows_in_every_table_with_a_tenant(self) -> None:
        policies = [s for s in grants_sql("worker", ["acme", "a.b"]) if "ROW POLICY" in s]
        tables = ("requests", "dead_letters", "usage_per_minute", "errors_per_minute")
        for table in tables:
            on_table = [p for p in policies if f" ON worker.{table}\n" in p]
            assert any("USING 1 TO worker_analyst_all_tenants" in p for p in on_table), table
            assert any(
                "USING tenant = 'acme' TO worker_analyst_tenant_acme" in p for p in on_table
            ), table
            assert any(
                f"USING tenant = 'a.b' TO worker_analyst_tenant_{tenant_name('a.b')}" in p
                for p in on_table
            ), table
        # The writer's high-water read must not be emptied by the policies.
        assert any("ON worker.requests\n" in p and "TO worker_writer" in p for p in policies)

    def test_tenant_names_are_identifiers_and_distinct(self) -> None:
        assert tenant_name("acme") == "acme"
        assert re.fullmatch(r"a_b_[0-9a-f]{6}", tenant_name("a.b"))
        assert tenant_name("a.b") != tenant_name("a:b") != tenant_name("a_b")

    def test_a_tenant_cannot_inject_sql(self) -> None:
        with pytest.raises(ConfigurationError):
            grants_sql("worker", ["acme' OR 1 = 1 --"])
