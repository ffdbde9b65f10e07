"""Cache hit ratio over a replayed workload, measured through a real worker process.

A trace of requests is drawn from a Zipf distribution over a fixed set of
distinct questions (tenants x SKUs x quantities x currencies, and some texts),
then replayed ``--rounds`` times against one worker on the local broker, in
waves of ``--wave`` requests (each wave is read back before the next is
published, as traffic that arrives over time). The report gives the hit ratio
per round from the responses' ``meta.cache``, next to the ideal one (every
repeat of a question already asked is a hit). The measured ratio stays below
the ideal by the repeats inside one wave: requests of one batch are looked up
before any of them is answered.

    python bench/cache_hit_ratio.py --requests 5000 --keys 500 --rounds 2 --wave 100

Requests are signed (HMAC), with one API key per tenant created for the run under a
throwaway master key, as in production. Needs the local services (services/run.sh up).
Prints one JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from bench.keys import create_keys, sign
from worker.auth.secrets import new_master_key
from worker.cache.keys import request_key
from worker.kafka_admin import create_topics
from worker.operations.registry import default_registry
from worker.publish.produce import send_records
from worker.reference.publish import demo_reference_data, publish_reference
from worker.settings import KafkaSettings, RedisSettings
from worker.topology import load_topology

REPO = Path(__file__).resolve().parents[1]
TOPICS_FILE = REPO / "topics" / "topics.toml"


@dataclass(frozen=True)
class Question:
    tenant: str
    operation: str
    params: dict[str, Any]


@dataclass
class RoundReport:
    requests: int
    distinct: int
    hits: int
    misses: int
    bypassed: int
    hit_ratio: float
    ideal_hit_ratio: float
    seconds: float


@dataclass
class Report:
    requests_per_round: int
    distinct_questions: int
    zipf_s: float
    keyed_by_cache_key: bool
    rounds: list[RoundReport] = field(default_factory=list)

    @property
    def hit_ratio(self) -> float:
        total = sum(r.requests for r in self.rounds)
        return sum(r.hits for r in self.rounds) / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hit_ratio": round(self.hit_ratio, 4)}


def questions(distinct: int, rng: random.Random) -> list[Question]:
    """``distinct`` different questions: quotes mostly, some texts."""
    found: dict[str, Question] = {}
    while len(found) < distinct:
        tenant = rng.choice(["acme", "globex", "initech"])
        if rng.random() < 0.8:
            params: dict[str, Any] = {
                "sku": rng.choice(["SKU-1", "SKU-2", "SKU-3", "SKU-4"]),
                "quantity": rng.randint(1, 50),
                "currency": rng.choice(["EUR", "USD", "GBP", "CHF"]),
            }
            question = Question(tenant, "price.quote", params)
        else:
            text = " ".join(rng.choice(["tea", "coffee", "milk", "cup"]) for _ in range(8))
            question = Question(tenant, "text.stats", {"text": text})
        found[orjson.dumps([tenant, question.operation, question.params]).decode()] = question
    return list(found.values())


def zipf_trace(pool: list[Question], length: int, s: float, rng: random.Random) -> list[Question]:
    """``length`` draws from ``pool``, the i-th most popular with weight 1 / i**s."""
    weights = [1.0 / (rank**s) for rank in range(1, len(pool) + 1)]
    return rng.choices(pool, weights=weights, k=length)


def encode(question: Question, request_id: str, *, by_cache_key: bool) -> tuple[bytes, bytes]:
    body = {
        "request_id": request_id,
        "tenant": question.tenant,
        "operation": question.operation,
        "params": question.params,
        "created_at": "2026-01-01T00:00:00Z",
    }
    key = request_id.encode()
    if by_cache_key:
        operation = default_registry().get(question.operation)
        assert operation is not None
        params = operation.params_model.model_validate(question.params)
        key = request_key(question.tenant, operation.name, operation.version, params)
    return key, orjson.dumps(body)


TENANTS = ("acme", "globex", "initech")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _replay(
    kafka: KafkaSettings,
    records: list[tuple[str, bytes, bytes]],
    headers: list[list[tuple[str, bytes]]],
    ids: list[str],
    responses_topic: str,
    *,
    wave: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Publish ``records`` a wave at a time, each once the previous one is answered."""
    consumer = AIOKafkaConsumer(
        responses_topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    answers: dict[str, Any] = {}
    try:
        for start in range(0, len(records), wave):
            want = set(ids[start : start + wave])
            await send_records(
                kafka, records[start : start + wave], headers=headers[start : start + wave]
            )
            deadline = time.monotonic() + timeout_s
            while not want <= answers.keys():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(want - answers.keys())} requests were not answered")
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    for record in batch:
                        body = orjson.loads(record.value)
                        answers[body["request_id"]] = body
    finally:
        await consumer.stop()
    return answers


def run(
    *,
    requests: int = 5000,
    keys: int = 500,
    rounds: int = 2,
    zipf_s: float = 1.1,
    wave: int = 100,
    by_cache_key: bool = True,
    bootstrap: str = "127.0.0.1:9092",
    redis_url: str = "redis://127.0.0.1:6379/0",
    seed: int = 7,
    timeout_s: float = 300.0,
) -> Report:
    """Replay a Zipf trace ``rounds`` times through a fresh worker; the hit ratio per round."""
    rng = random.Random(seed)  # noqa: S311 - a workload, not a secret
    trace = zipf_trace(questions(keys, rng), requests, zipf_s, rng)
    run_id = f"bench{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"{run_id}.")
    topology = load_topology(TOPICS_FILE)
    asyncio.run(create_topics(kafka, topology))
    asyncio.run(publish_reference(kafka, topology, demo_reference_data()))
    master_key = new_master_key()
    redis = RedisSettings(url=SecretStr(redis_url), key_prefix=f"{run_id}:")
    api_keys = asyncio.run(create_keys(redis, master_key, TENANTS))
    requests_topic = kafka.topic(topology.by_role("requests").name)
    responses_topic = kafka.topic(topology.by_role("responses").name)
    report = Report(requests, len({id(q) for q in trace}), zipf_s, by_cache_key)
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as root:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_PREFIX": f"{run_id}.",
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"{run_id}:",
            "SECURITY_MASTER_KEY": master_key,
            "CLICKHOUSE_PATH": str(Path(root) / "chdb"),
            "WORKER_APP_ID": run_id,
            "WORKER_DATA_DIR": str(Path(root) / "data"),
            "WORKER_TOPICS_FILE": str(TOPICS_FILE),
            "WORKER_WEB_PORT": str(_free_port()),
            "WORKER_LOG_LEVEL": "warning",
            "LIMITS_RATE_BURST": "10000000",
            "LIMITS_RATE_PER_SECOND": "10000000",
        }
        log = (Path(root) / "worker.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"], env=env, cwd=REPO, stdout=log, stderr=log
        )
        try:
            seen: set[int] = set()
            for number in range(rounds):
                ids = [f"{run_id}-{number}-{i}" for i in range(len(trace))]
                records = [
                    (requests_topic, *encode(q, rid, by_cache_key=by_cache_key))
                    for q, rid in zip(trace, ids, strict=True)
                ]
                headers = [
                    sign(api_keys, orjson.loads(value)["tenant"], rid, value)
                    for (_, _, value), rid in zip(records, ids, strict=True)
                ]
                started = time.monotonic()
                answers = asyncio.run(
                    _replay(
                        kafka,
                        records,
                        headers,
                        ids,
                        responses_topic,
                        wave=wave,
                        timeout_s=timeout_s,
                    )
                )
                report.rounds.append(_round(trace, ids, answers, seen, time.monotonic() - started))
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=120)
            log.close()
    return report


def _round(
    trace: list[Question], ids: list[str], answers: dict[str, Any], seen: set[int], seconds: float
) -> RoundReport:
    statuses = Counter(answers[rid]["meta"]["cache"] for rid in ids)
    repeats = 0
    for question in trace:
        repeats += id(question) in seen
        seen.add(id(question))
    return RoundReport(
        requests=len(ids),
        distinct=len({id(q) for q in trace}),
        hits=statuses["hit"],
        misses=statuses["miss"],
        bypassed=statuses["bypass"],
        hit_ratio=round(statuses["hit"] / len(ids), 4),
        ideal_hit_ratio=round(repeats / len(ids), 4),
        seconds=round(seconds, 2),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per round")
    parser.add_argument("--keys", type=int, default=500, help="distinct questions to draw from")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--zipf-s", type=float, default=1.1)
    parser.add_argument("--wave", type=int, default=100, help="requests published at a time")
    parser.add_argument("--key-by-request-id", action="store_true", help="not by cache key")
    parser.add_argument("--bootstrap", default=f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}")
    parser.add_argument(
        "--redis", default=f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/0"
    )
    args = parser.parse_args()
    report = run(
        requests=args.requests,
        keys=args.keys,
        rounds=args.rounds,
        zipf_s=args.zipf_s,
        wave=args.wave,
        by_cache_key=not args.key_by_request_id,
        bootstrap=args.bootstrap,
        redis_url=args.redis,
    )
    print(json.dumps(report.as_dict(), indent=2))


if __name__ == "__main__":
    main()
