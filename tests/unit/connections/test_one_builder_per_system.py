"""Every Kafka and Redis client in the worker is built with the one builder of its system.

A client constructed with its own keyword arguments would miss TLS and SASL
settings silently; this scan of the package source makes that a test failure.
(The Faust app's own clients are checked by building them, in test_kafka_options.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "worker"
KAFKA_CLIENTS = {"AIOKafkaProducer", "AIOKafkaConsumer", "AIOKafkaAdminClient", "AIOKafkaClient"}


def _name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _spreads_client_options(call: ast.Call) -> bool:
    return any(
        keyword.arg is None
        and isinstance(keyword.value, ast.Call)
        and _name(keyword.value) == "client_options"
        for keyword in call.keywords
    )


def stray_clients(source: str, *, redis_builder: bool = False) -> list[str]:
    """Kafka clients built without ``**client_options(...)``; Redis clients built elsewhere."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node)
        if name in KAFKA_CLIENTS and not _spreads_client_options(node):
            found.append(f"line {node.lineno}: {name} without **client_options(...)")
        is_redis = name in ("from_url", "Redis", "StrictRedis") and "redis" in ast.unparse(node)
        if is_redis and not redis_builder:
            found.append(f"line {node.lineno}: a Redis client outside worker/connections/redis.py")
    return found


def test_the_scan_finds_a_client_built_by_hand() -> None:
    sample = (
        "AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers)\n"
        "aiokafka.AIOKafkaConsumer(**client_options(s), group_id=None)\n"
        "aioredis.Redis.from_url(url)\n"
    )
    assert len(stray_clients(sample)) == 2


def test_every_kafka_and_redis_client_of_the_worker_uses_its_builder() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    builder = PACKAGE / "connections" / "redis.py"
    offenders = {
        str(path.relative_to(PACKAGE)): stray
        for path in sources
        if (stray := stray_clients(path.read_text("utf-8"), redis_builder=path == builder))
    }
    assert offenders == {}
    # The Faust app gets the same settings as broker_credentials.
    assert "broker_credentials=faust_credentials(settings.kafka)" in (PACKAGE / "app.py").read_text(
        "utf-8"
    )
