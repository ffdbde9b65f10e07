"""The requests of a run, and publishing them: all at once, or at a fixed rate.

Every valid request gets ``created_at`` set to the moment it is handed to the
producer, so that the time from "request created" to "response published" can
be read from the broker's timestamps later.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from worker.cache.keys import request_key
from worker.loadgen import SKUS, TENANTS, SampleRequest, invalid_requests
from worker.operations.registry import default_registry

#: A planned cache hit repeats a question asked at least this many requests
#: earlier (about this / 4 per partition): far enough back to have been answered
#: in an earlier batch, since requests of one batch are looked up together.
HIT_DISTANCE = 8000

Signer = Callable[[str, str, bytes], list[tuple[str, bytes]]]


@dataclass(frozen=True, slots=True)
class Workload:
    """The requests of a run, with their parsed bodies so that they can be re-stamped.

    ``tenants[i]`` is the tenant whose key signs request ``i`` (the one it names,
    or ``acme`` for broken requests that name none); ``planned_hits`` counts the
    requests that repeat an earlier question.
    """

    samples: list[SampleRequest]
    bodies: list[dict[str, Any] | None]
    tenants: list[str]
    planned_hits: int = 0
    signer: Signer | None = None

    @property
    def dead_letters(self) -> int:
        """How many of the requests the worker must also dead-letter."""
        return sum(sample.dead_letter for sample in self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def signed_by(self, signer: Signer | None) -> Workload:
        return replace(self, signer=signer)

    def record(self, index: int, created: float) -> tuple[bytes, list[tuple[str, bytes]] | None]:
        """The request's bytes (``created_at`` set to ``created``) and its signature headers."""
        sample, body = self.samples[index], self.bodies[index]
        value = sample.value
        if body is not None:
            body["created_at"] = datetime.fromtimestamp(created, UTC).isoformat()
            value = orjson.dumps(body)
        if self.signer is None:
            return value, None
        name = sample.request_id or (sample.key or b"unnamed").decode("utf-8", "replace")
        return value, self.signer(self.tenants[index], name, value)


def _question(rng: random.Random, index: int) -> tuple[str, str, dict[str, Any]]:
    """A question unlikely to have been asked before: a large quantity range, a unique text."""
    tenant = rng.choice(TENANTS)
    if rng.random() < 0.75:
        params: dict[str, Any] = {
            "sku": rng.choice(SKUS),
            "quantity": rng.randint(1, 1_000_000),
            "currency": rng.choice(("EUR", "USD", "GBP")),
        }
        return tenant, "price.quote", params
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 40)))
    return tenant, "text.stats", {"text": f"{words} n{index}", "top": 3}


_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tea", "cup")


def build_workload(
    n: int, invalid_share: float, run_id: str, *, cache_hit_share: float = 0.0, seed: int = 7
) -> Workload:
    """``n`` requests: ``invalid_share`` broken (every kind in turn, at random places), and
    of the valid ones ``cache_hit_share`` repeating an earlier question, the rest new ones.

    Valid requests are keyed by their cache key, as a producer that wants cache hits
    keys them (:func:`worker.cache.keys.request_key`): a repeat lands on the partition
    of the question it repeats, after it.
    """
    rng = random.Random(seed)  # noqa: S311 - a workload, not a secret
    registry = default_registry()
    invalid = round(n * invalid_share)
    asked: list[tuple[str, str, dict[str, Any], bytes]] = []
    samples: list[SampleRequest] = []
    tenants: list[str] = []
    hits = 0
    for i in range(n - invalid):
        if i > HIT_DISTANCE and rng.random() < cache_hit_share:
            tenant, operation, params, key = asked[rng.randrange(i - HIT_DISTANCE)]
            hits += 1
        else:
            tenant, operation, params = _question(rng, i)
            found = registry.get(operation)
            assert found is not None
            validated = found.params_model.model_validate(params)
            key = request_key(tenant, found.name, found.version, validated)
        asked.append((tenant, operation, params, key))
        request_id = f"{run_id}-{i:07d}"
        body = {
            "request_id": request_id,
            "tenant": tenant,
            "operation": operation,
            "params": params,
            "created_at": "",
            "correlation_id": f"corr-{request_id}",
        }
        samples.append(
            SampleRequest(key, orjson.dumps(body), request_id, "ok", None, dead_letter=False)
        )
        tenants.append(tenant)
    kinds = len(invalid_requests("x"))
    for i in range(invalid):
        sample = invalid_requests(f"{run_id}-bad{i:05d}")[i % kinds]
        at = rng.randrange(len(samples) + 1)
        samples.insert(at, sample)
        tenants.insert(at, _tenant_of(sample.value))
    bodies: list[dict[str, Any] | None] = []
    for sample in samples:
        try:
            parsed = orjson.loads(sample.value)
        except orjson.JSONDecodeError:
            parsed = None
        bodies.append(parsed if isinstance(parsed, dict) and "created_at" in parsed else None)
    return Workload(samples, bodies, tenants, planned_hits=hits)


def _tenant_of(value: bytes) -> str:
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return TENANTS[0]
    tenant = body.get("tenant") if isinstance(body, dict) else None
    return tenant if isinstance(tenant, str) and tenant in TENANTS else TENANTS[0]


Tick = Callable[[int], None]


async def publish_all(bootstrap: str, topic: str, load: Workload, tick: Tick) -> None:
    """Publish every request as fast as the producer goes; wait for every acknowledgement."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks="all"
    )
    await producer.start()
    try:
        futures = []
        for index, sample in enumerate(load.samples):
            value, headers = load.record(index, time.time())
            futures.append(await producer.send(topic, value, sample.key, headers=headers))
            if index % 5000 == 0:
                tick(index)
        await asyncio.gather(*futures)
        tick(len(load))
    finally:
        await producer.stop()


@dataclass(frozen=True, slots=True)
class Sent:
    """Where a paced request landed and when it was created (epoch seconds)."""

    partition: int
    offset: int
    created: float


@contextmanager
def collector_held() -> Iterator[None]:
    """This process's cycle collector held off: what exists now frozen, collections disabled.

    The generator holds the whole workload; a full collection of it took
    300-400 ms, every 8 s or so at 4,800 requests/s. Publishing stopped meanwhile
    and resumed with a burst of the requests due, which the worker then answered
    late: the generator's pause, measured as the worker's latency. Reference
    counting still frees what the pacing loop drops; the collector resumes after.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def publish_paced(
    bootstrap: str,
    topic: str,
    load: Workload,
    indices: Sequence[int],
    *,
    rate: float,
    tick: Tick,
) -> list[Sent]:
    """Publish ``load[indices]`` at ``rate`` per second, paced every millisecond.

    The producer lingers 1 ms: a client with something to send sends it.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks="all")
    await producer.start()
    loop = asyncio.get_running_loop()
    pending: list[tuple[asyncio.Future[Any], float]] = []
    try:
        with collector_held():
            start = loop.time()
            sent = 0
            while sent < len(indices):
                due = min(len(indices), int((loop.time() - start) * rate) + 1)
                while sent < due:
                    index = indices[sent]
                    created = time.time()
                    value, headers = load.record(index, created)
                    future = await producer.send(
                        topic, value, load.samples[index].key, headers=headers
                    )
                    pending.append((future, created))
                    sent += 1
                tick(sent)
                await asyncio.sleep(0.001)
            # Held until the broker has them all: the last requests are still in the
            # producer's hands when the loop ends.
            metadata = await asyncio.gather(*(future for future, _ in pending))
    finally:
        await producer.stop()
    return [
        Sent(md.partition, md.offset, created)
        for md, (_, created) in zip(metadata, pending, strict=True)
    ]
