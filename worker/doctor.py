"""``worker doctor``'s checks: configuration, then each dependency, each with what to fix.

Every check returns :class:`Finding`\\ s and never raises: a doctor that crashes
on the first broken dependency tells the operator nothing about the others.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from worker.clickhouse.client import connect
from worker.clickhouse.migrate import load_migrations
from worker.connections.kafka import client_options, start_client
from worker.connections.redis import redis_client
from worker.errors import ConfigurationError, WorkerError
from worker.kafka_admin import check_topics
from worker.settings import Settings
from worker.topology import Topology, load_topology

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check, and what to do about it."""

    check: str
    status: Status
    detail: str
    fix: str = ""


def configuration_findings(error: ConfigurationError) -> list[Finding]:
    """One finding per invalid variable of a failed :func:`~worker.settings.load_settings`."""
    errors = error.details.get("errors") or []
    if not errors:
        return [Finding("configuration", "fail", error.message, "fix the named setting")]
    return [
        Finding(
            "configuration",
            "fail",
            f"{e['variable']}: {e['message']}",
            f"set {e['variable']} to a valid value (README, Configuration)",
        )
        for e in errors
    ]


async def _bounded(
    check: str, timeout_s: float, run: Callable[[], Awaitable[list[Finding]]], fix: str
) -> list[Finding]:
    try:
        return await asyncio.wait_for(run(), timeout_s)
    except TimeoutError:
        return [Finding(check, "fail", f"no answer within {timeout_s:g}s", fix)]
    except WorkerError as exc:
        return [Finding(check, "fail", exc.message, fix)]
    except Exception as exc:  # noqa: BLE001 - every failure becomes a finding
        return [Finding(check, "fail", f"{type(exc).__name__}: {exc}", fix)]


async def check_kafka(settings: Settings, topology: Topology, timeout_s: float) -> list[Finding]:
    """The broker answers, and every declared topic exists as declared."""
    kafka = settings.kafka
    reach_fix = (
        f"check KAFKA_BOOTSTRAP_SERVERS ({kafka.bootstrap_servers}) and "
        "KAFKA_SECURITY_PROTOCOL (and KAFKA_SASL_*, KAFKA_TLS_* for SASL_SSL/SSL); "
        "is the broker up? (locally: make services-up)"
    )

    async def reach() -> list[Finding]:
        admin = AIOKafkaAdminClient(
            **client_options(kafka),
            client_id="request-worker-doctor",
            request_timeout_ms=int(timeout_s * 1000),
        )
        started = time.perf_counter()
        await start_client(admin, kafka)
        try:
            topics = await admin.list_topics()
        finally:
            await admin.close()
        millis = (time.perf_counter() - started) * 1000
        return [
            Finding(
                "kafka",
                "ok",
                f"{kafka.bootstrap_servers} answered in {millis:.0f} ms ({len(topics)} topics)",
            )
        ]

    found = await _bounded("kafka", timeout_s, reach, reach_fix)
    if found[0].status != "ok":
        return found
    reports = await _bounded(
        "topics", timeout_s * 3, lambda: _topic_findings(settings, topology), reach_fix
    )
    return found + reports


async def _topic_findings(settings: Settings, topology: Topology) -> list[Finding]:
    findings = []
    for report in await check_topics(settings.kafka, topology):
        if report.ok:
            findings.append(Finding("topics", "ok", f"{report.name} as declared"))
        elif not report.exists:
            findings.append(
                Finding(
                    "topics",
                    "fail",
                    f"{report.name} is missing",
                    "run `worker topics create` (or set WORKER_CREATE_TOPICS=true)",
                )
            )
        else:
            findings.append(
                Finding(
                    "topics",
                    "fail",
                    f"{report.name}: {'; '.join(report.problems)}",
                    f"make the broker's topic match {settings.worker.topics_file} "
                    "(kafka-topics.sh --alter / kafka-configs.sh), or change the declaration",
                )
            )
    return findings


async def check_redis(settings: Settings, timeout_s: float) -> list[Finding]:
    """Redis answers PING."""
    policy = settings.limits.on_redis_unavailable

    async def ping() -> list[Finding]:
        client = redis_client(settings.redis, timeout_s=timeout_s)
        started = time.perf_counter()
        try:
            await client.ping()
        finally:
            await client.aclose()
        millis = (time.perf_counter() - started) * 1000
        return [Finding("redis", "ok", f"PING answered in {millis:.0f} ms")]

    found = await _bounded(
        "redis",
        timeout_s,
        ping,
        "check REDIS_URL (host, port, database; rediss:// for TLS), REDIS_USERNAME, "
        "REDIS_PASSWORD and REDIS_TLS_*; is Redis up?",
    )
    if found[0].status == "fail" and policy == "allow":
        # The worker serves without limits meanwhile: a warning, not a failure.
        return [
            Finding(
                "redis",
                "warn",
                f"{found[0].detail} (LIMITS_ON_REDIS_UNAVAILABLE=allow: requests would be "
                "served without rate limits)",
                found[0].fix,
            )
        ]
    return found


def _clickhouse(settings: Settings) -> list[Finding]:
    client = connect(settings.clickhouse)
    try:
        started = time.perf_counter()
        client.command("SELECT 1")
        millis = (time.perf_counter() - started) * 1000
        findings = [
            Finding(
                "clickhouse",
                "ok",
                f"{settings.clickhouse.describe()} answered SELECT 1 in {millis:.0f} ms",
            )
        ]
        database = settings.clickhouse.database
        exists = client.command(
            "SELECT count() FROM system.tables WHERE database = {db:String} "
            "AND name = 'schema_migrations'",
            parameters={"db": database},
        )
        applied: set[int] = set()
        if int(exists):
            rows = client.query(f"SELECT version FROM {database}.schema_migrations")  # noqa: S608
            applied = {int(row[0]) for row in rows.result_rows}
        pending = [m for m in load_migrations() if m.version not in applied]
        if pending:
            names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
            findings.append(
                Finding(
                    "clickhouse",
                    "warn",
                    f"migrations not applied yet: {names}",
                    "run `worker db migrate` (`worker run` also applies them at start-up)",
                )
            )
        else:
            findings.append(Finding("clickhouse", "ok", f"schema of {database} is current"))
        return findings
    finally:
        client.close()


async def check_clickhouse(settings: Settings, timeout_s: float) -> list[Finding]:
    """ClickHouse answers, and the schema has every migration."""
    if settings.clickhouse.embedded:
        fix = (
            f"embedded chDB at {settings.clickhouse.path}: a running worker locks it; stop the "
            "worker to check it, or set CLICKHOUSE_URL for a server"
        )
    else:
        fix = "check CLICKHOUSE_URL (scheme, host, port, user, password); is the server up?"
    return await _bounded(
        "clickhouse", timeout_s * 3, lambda: asyncio.to_thread(_clickhouse, settings), fix
    )


def _get(url: str, timeout_s: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 - http only
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


async def check_worker(
    settings: Settings, timeout_s: float
) -> tuple[list[Finding], dict[str, Any] | None]:
    """Whether a worker answers on WORKER_WEB_HOST:WORKER_WEB_PORT; its readiness report if so."""
    host = settings.worker.web_host
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a bind address, reached on loopback
        host = "127.0.0.1"
    url = f"http://{host}:{settings.worker.web_port}/health/ready"
    try:
        status, body = await asyncio.to_thread(_get, url, timeout_s)
    except (OSError, urllib.error.URLError):
        return [Finding("worker", "ok", f"no worker answers at {url} (none running here)")], None
    try:
        report: dict[str, Any] = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [
            Finding(
                "worker",
                "warn",
                f"{url} answered {status} but not with a readiness report",
                "is WORKER_WEB_PORT used by another program?",
            )
        ], None
    failing = [
        f"{name}: {check.get('detail')}"
        for name, check in report.get("checks", {}).items()
        if not check.get("ok")
    ]
    if report.get("ready"):
        detail = f"a worker at {url} is {report.get('status')}"
        level: Status = "warn" if failing else "ok"
        return [Finding("worker", level, "; ".join([detail, *failing]))], report
    return [
        Finding(
            "worker",
            "warn",
            f"a worker at {url} is not ready: " + "; ".join(failing),
            "see docs/operations.md, Runbook",
        )
    ], report


def clickhouse_seen_by(report: dict[str, Any], settings: Settings) -> list[Finding]:
    """Embedded chDB held by a running worker: its own last ClickHouse check instead."""
    check = report.get("checks", {}).get("clickhouse") or {}
    detail = f"{settings.clickhouse.describe()} is held by the running worker, which reports: "
    if check.get("ok"):
        return [Finding("clickhouse", "ok", detail + str(check.get("detail")))]
    return [
        Finding(
            "clickhouse",
            "fail",
            detail + str(check.get("detail", "no check yet")),
            "see the worker's logs for the ClickHouse errors",
        )
    ]


async def run_checks(settings: Settings, *, timeout_s: float = 5.0) -> list[Finding]:
    """Every check after the configuration, dependencies in parallel."""
    try:
        topology = load_topology(settings.worker.topics_file)
    except ConfigurationError as exc:
        return [Finding("configuration", "fail", exc.message, "fix WORKER_TOPICS_FILE")]
    findings = [
        Finding(
            "configuration",
            "ok",
            f"settings valid; {len(topology.topic)} topics declared in "
            f"{settings.worker.topics_file}",
        )
    ]
    worker, report = await check_worker(settings, timeout_s)
    clickhouse = (
        asyncio.sleep(0, clickhouse_seen_by(report, settings))
        if report is not None and settings.clickhouse.embedded
        else check_clickhouse(settings, timeout_s)
    )
    groups = await asyncio.gather(
        check_kafka(settings, topology, timeout_s), check_redis(settings, timeout_s), clickhouse
    )
    for group in groups:
        findings.extend(group)
    return findings + worker
