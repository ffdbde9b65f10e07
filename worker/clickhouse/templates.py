"""SQL for production set-ups the worker does not run itself: a cluster, and access rights.

``worker db cluster-sql`` and ``worker db grants-sql`` print these, rendered for
a database, a cluster and tenants, for an administrator to review and run.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from worker.clickhouse.migrate import Migration, Retention, load_migrations
from worker.errors import ConfigurationError

_CLUSTER = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
# The request contract's identifier: no quotes or backslashes can reach a literal.
_TENANT = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def cluster_sql(database: str, cluster: str, retention: Retention | None = None) -> list[str]:
    """The cluster variant of every migration, then the retention TTLs, ON CLUSTER."""
    if not _CLUSTER.fullmatch(cluster):
        raise ConfigurationError(f"{cluster!r} is not a cluster name")
    statements = [
        statement
        for migration in load_migrations("cluster")
        for statement in migration.statements(database, cluster=cluster)
    ]
    for table, (column, days) in (retention or Retention()).ttl().items():
        target = f"{database}.{table}_local ON CLUSTER '{cluster}'"
        if days:
            statements.append(
                f"ALTER TABLE {target} MODIFY TTL {column} + INTERVAL {days} DAY "
                "SETTINGS materialize_ttl_after_modify = 0"
            )
        else:
            statements.append(f"ALTER TABLE {target} REMOVE TTL")
    return statements


def tenant_name(tenant: str) -> str:
    """``tenant`` as part of a role or policy name: letters, digits and underscores.

    Tenants that differ only in punctuation get a short hash so their names differ.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", tenant)
    if name != tenant:
        name = f"{name}_{hashlib.sha256(tenant.encode()).hexdigest()[:6]}"
    return name


def _security(name: str) -> Migration:
    text = resources.files("worker.clickhouse").joinpath("security", name).read_text("utf-8")
    return Migration(0, name, text)


def grants_sql(database: str, tenants: list[str]) -> list[str]:
    """The writer and analyst roles, then one row-policy role per tenant."""
    statements = _security("roles.sql").statements(database)
    for tenant in tenants:
        if not _TENANT.fullmatch(tenant):
            raise ConfigurationError(f"{tenant!r} is not a tenant identifier")
        statements += _security("tenant.sql").statements(
            database, tenant=tenant, tenant_name=tenant_name(tenant)
        )
    return statements
