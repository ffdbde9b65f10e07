"""One measured run ("arm"): start the processes, wait for every output, measure, stop.

Every arm reads the same pre-published requests topic with a consumer group of
its own and writes to output topics of its own, stamped by the broker
(``LogAppendTime``). Throughput is requests over the time from the first
request consumed to the last output published (for the worker: and its rows
confirmed in ClickHouse).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from rich.progress import Progress, TaskID

from bench import profiling
from bench.load import Workload, publish_paced
from bench.outputs import Output, Topics
from bench.procs import (
    Proc,
    WorkerSpec,
    query_rows,
    rows_stored,
    spawn,
    spawn_worker,
    stage_seconds,
    worker_specs,
)
from bench.procstat import Sampler, memory_mb
from bench.stack import REPO, RunStack
from bench.stats import latency_per_second, per_second, summary_ms


class ArmError(RuntimeError):
    """An arm did not finish: a process died or the outputs did not all arrive in time."""


@dataclass
class Context:
    """What every arm of a run shares."""

    stack: RunStack
    load: Workload
    progress: Progress
    service_pids: dict[str, int]
    timeout_s: float


@dataclass
class ArmResult:
    """The measurements of one arm; ``summary()`` is what goes into the results file."""

    label: str
    kind: str
    processes: int
    n: int
    first_consumed: float
    end: float
    throughput_rps: float
    cpu_s: float
    peak_rss_mb: list[float]
    cpu_pct: dict[str, float]
    per_second: list[int]
    latency_ms: list[float] = field(default_factory=list, repr=False)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_s_per_1k(self) -> float:
        return self.cpu_s / self.n * 1000

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "kind": self.kind,
            "processes": self.processes,
            "n": self.n,
            "seconds": round(self.end - self.first_consumed, 3),
            "throughput_rps": round(self.throughput_rps, 1),
            "cpu_s_per_1k": round(self.cpu_s_per_1k, 4),
            "peak_rss_mb": [round(v, 1) for v in self.peak_rss_mb],
            "cpu_pct_of_one_core": self.cpu_pct,
            **self.details,
        }
        if self.latency_ms:
            out["latency_from_consumed"] = summary_ms(self.latency_ms)
        return out


def _cpu_pct(sampler: Sampler, names: Sequence[str], start: float, end: float) -> dict[str, float]:
    """CPU of each sampled process and of the whole machine in the window, in % of one core.

    For the measured processes also their main thread's time on a core and time
    waiting for one (``main_thread_ran`` / ``main_thread_waited_for_cpu``).
    """
    seconds = max(end - start, 1e-9)
    out = {}
    for name, series in sampler.series.items():
        out[name] = round(series.between(start, end) / seconds * 100, 1)
    out["machine"] = round(sampler.machine.between(start, end) / seconds * 100, 1)
    known = sum(v for k, v in out.items() if k != "machine")
    out["everything_else"] = round(out["machine"] - known, 1)
    out["measured"] = round(sum(out[name] for name in names), 1)
    for name in names:
        ran = sampler.main_ran[name].between(start, end)
        waited = sampler.main_waited[name].between(start, end)
        out[f"{name}:main_thread_ran"] = round(ran / seconds * 100, 1)
        out[f"{name}:main_thread_waited_for_cpu"] = round(waited / seconds * 100, 1)
        # chDB's own threads, the insert executor, aiokafka's none: what runs beside the loop.
        out[f"{name}:other_threads"] = round(out[name] - ran / seconds * 100, 1)
    return out


async def _wait(
    label: str,
    topics: Topics,
    want: dict[str, int],
    procs: Sequence[Proc],
    *,
    ctx: Context,
    task: TaskID,
    on_counts: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Poll the output topics' end offsets until each holds what it must."""
    main = next(iter(want))
    deadline = time.monotonic() + ctx.timeout_s
    while True:
        counts = await topics.counts()
        ctx.progress.update(task, completed=min(counts[main], want[main]))
        if on_counts is not None:
            on_counts(counts)
        if all(counts[t] >= w for t, w in want.items()):
            return counts
        dead = [p for p in procs if not p.alive()]
        if dead:
            raise ArmError(f"{label}: {dead[0].label} exited early:\n{dead[0].log_tail()}")
        if time.monotonic() > deadline:
            raise ArmError(f"{label}: only {counts} of {want} after {ctx.timeout_s:.0f}s")
        await asyncio.sleep(0.25)


async def _wait_for_rows(label: str, specs: Sequence[WorkerSpec], n: int) -> float | None:
    """When ClickHouse confirmed the last of ``n`` rows, from the workers' ``/metrics``.

    Responses go out before their rows are inserted, so the last rows may still be
    on their way when the last response arrived. None: a worker that does not
    report insert times (an older revision, which stored rows before answering).
    """
    deadline = time.monotonic() + 120
    while True:
        stored = [await asyncio.to_thread(rows_stored, spec) for spec in specs]
        if not any(last for _, last in stored):
            return None
        if sum(rows for rows, _ in stored) >= n:
            return max(last for _, last in stored)
        if time.monotonic() > deadline:
            raise ArmError(f"{label}: ClickHouse confirmed only {stored} of {n} rows")
        await asyncio.sleep(0.05)


def _sampler(ctx: Context, procs: Sequence[Proc]) -> Sampler:
    pids = {p.label: p.pid for p in procs}
    pids.update(ctx.service_pids)
    pids["bench"] = os.getpid()
    sampler = Sampler(pids)
    sampler.start()
    return sampler


async def _stop_all(procs: Sequence[Proc]) -> None:
    await asyncio.gather(*(p.stop() for p in procs))


def _batches(received: Sequence[float]) -> dict[str, Any]:
    """Batch sizes, from ``meta.received_at``: the moment the pipeline took the batch."""
    sizes = Counter(received)
    return {
        "batches": len(sizes),
        "batch_size_mean": round(len(received) / max(len(sizes), 1), 1),
        "batch_size_max": max(sizes.values(), default=0),
    }


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def worker_topics(stack: RunStack, arm: str) -> tuple[str, str]:
    """The responses and dead-letter topics of a worker arm."""
    return stack.topic(f"{arm}.responses"), stack.topic(f"{arm}.requests.dead-letter")


async def worker_arm(
    ctx: Context,
    label: str,
    *,
    src: Path = REPO,
    processes: int = 1,
    profile_to: Path | None = None,
) -> ArmResult:
    """The worker (``processes`` of them in one group) draining the shared backlog."""
    stack, n = ctx.stack, len(ctx.load)
    topics_file = await stack.create_arm_topics(label)
    responses, dead_letters = worker_topics(stack, label)
    await stack.share_keys(label)
    specs = worker_specs(stack, label, src, topics_file, processes)
    procs = [spawn_worker(spec, stack) for spec in specs]
    spy: list[Any] = []

    def attach(counts: dict[str, int]) -> None:
        if profile_to is not None and not spy and counts[responses] > 0:
            spy.append(profiling.start(procs[0].pid, profile_to))

    sampler = _sampler(ctx, procs)
    try:
        async with Topics(stack.bootstrap, [responses, dead_letters]) as out:
            task = ctx.progress.add_task(label, total=n)
            want = {responses: n, dead_letters: ctx.load.dead_letters}
            counts = await _wait(label, out, want, procs, ctx=ctx, task=task, on_counts=attach)
            last_stored = await _wait_for_rows(label, specs, n)
            if spy:
                await asyncio.to_thread(profiling.stop, spy[0])
            peaks = [memory_mb(p.pid).get("VmHWM", float("nan")) for p in procs]
            stages = await asyncio.to_thread(stage_seconds, specs[0])
            await sampler.stop()
            await _stop_all(procs)
            outputs = await out.read_all()
    finally:
        await _stop_all(procs)
    rows = [await asyncio.to_thread(query_rows, spec) for spec in specs]
    collected = _Collected(procs, specs, sampler, peaks, counts, outputs, rows, last_stored)
    result = _worker_result(label, n, collected, responses)
    result.details["stage_seconds"] = stages
    return result


@dataclass(frozen=True, slots=True)
class _Collected:
    """What a worker arm gathered before its figures are worked out."""

    procs: Sequence[Proc]
    specs: Sequence[WorkerSpec]
    sampler: Sampler
    peaks: list[float]
    counts: dict[str, int]
    outputs: list[Output]
    rows: list[dict[str, Any]]
    #: When ClickHouse confirmed the last insert (None: not reported; see _wait_for_rows).
    last_stored: float | None


def _worker_result(label: str, n: int, got: _Collected, responses_topic: str) -> ArmResult:
    procs, specs, sampler, rows, outputs = got.procs, got.specs, got.sampler, got.rows, got.outputs
    received: list[float] = []
    latency: list[float] = []
    appended: list[float] = []
    statuses: Counter[str] = Counter()
    cache: Counter[str] = Counter()
    for record in outputs:
        if record.topic != responses_topic:
            continue
        body = orjson.loads(record.value)
        cache[body["meta"].get("cache") or "none"] += 1
        at = _epoch(body["meta"]["received_at"])
        received.append(at)
        appended.append(record.appended_ms / 1000)
        latency.append(record.appended_ms - at * 1000)
        statuses[body["status"] if body["error"] is None else body["error"]["code"]] += 1
    first = min(received)
    last_published = max(record.appended_ms for record in outputs) / 1000
    last_row = max(int(r["last_processed_ms"]) for r in rows) / 1000
    if got.last_stored is not None:
        last_row = max(last_row, got.last_stored)
    end = max(last_published, last_row)
    # With several processes, count only from the moment the last of them started
    # consuming (a process that joins later makes the group rebalance first). A
    # process that never got a partition has no rows and no start.
    busy = [r for r in rows if int(r["rows"]) > 0]
    all_started = max(int(r["first_received_ms"]) for r in busy) / 1000
    in_window = sum(1 for at in received if at >= all_started)
    cpu_names = [p.label for p in procs]
    cpu_s = sum(sampler.series[name].between(first, end) for name in cpu_names)
    return ArmResult(
        label=label,
        kind="worker",
        processes=len(procs),
        n=n,
        first_consumed=first,
        end=end,
        throughput_rps=in_window / (end - all_started),
        cpu_s=cpu_s,
        peak_rss_mb=got.peaks,
        cpu_pct=_cpu_pct(sampler, cpu_names, first, end),
        per_second=per_second(appended, first),
        latency_ms=latency,
        details={
            "src": str(specs[0].src),
            "responses": got.counts[responses_topic],
            "outputs_total": len(outputs),
            "statuses": dict(sorted(statuses.items())),
            "cache": dict(sorted(cache.items())),
            "rows": [int(r["rows"]) for r in rows],
            "row_positions": [int(r["positions"]) for r in rows],
            "partitions_per_process": [r["partitions"] for r in rows],
            "rows_confirmed_before_last_response": last_row <= last_published,
            "start_skew_s": round(all_started - first, 3),
            "processes_that_consumed": len(busy),
            **_batches(received),
            "throughput_from_first_consumed_rps": round(n / (end - first), 1),
        },
    )


BASELINES = {
    "aiokafka": "bench.aiokafka_loop",
    "faust": "bench.faust_forwarder",
}


async def baseline_arm(ctx: Context, kind: str, label: str) -> ArmResult:
    """A baseline process forwarding the shared backlog to its own output topic."""
    stack, n = ctx.stack, len(ctx.load)
    out_topic = await stack.create_output_topic(f"{label}.out")
    home = stack.workdir / label
    home.mkdir(parents=True, exist_ok=True)
    first_file = home / "first-consumed"
    argv = [
        sys.executable, "-m", BASELINES[kind],
        "--bootstrap", stack.bootstrap,
        "--topic", stack.topic("requests"),
        "--out-topic", out_topic,
        "--first-file", str(first_file),
    ]  # fmt: skip
    group = f"{stack.run_id}-{label}"
    argv += ["--group", group] if kind == "aiokafka" else ["--app-id", group]
    if kind == "faust":
        argv += ["--datadir", str(home / "faust")]
    proc = spawn(label, argv, dict(os.environ), REPO, home / "process.log")
    sampler = _sampler(ctx, [proc])
    try:
        async with Topics(stack.bootstrap, [out_topic]) as out:
            task = ctx.progress.add_task(label, total=n)
            await _wait(label, out, {out_topic: n}, [proc], ctx=ctx, task=task)
            peak = memory_mb(proc.pid).get("VmHWM", float("nan"))
            await sampler.stop()
            await proc.stop()
            outputs = await out.read_all()
    finally:
        await proc.stop()
    first = float(first_file.read_text())
    appended = [record.appended_ms / 1000 for record in outputs]
    end = max(appended)
    cpu_s = sampler.series[label].between(first, end)
    return ArmResult(
        label=label,
        kind=kind,
        processes=1,
        n=n,
        first_consumed=first,
        end=end,
        throughput_rps=n / (end - first),
        cpu_s=cpu_s,
        peak_rss_mb=[peak],
        cpu_pct=_cpu_pct(sampler, [label], first, end),
        per_second=per_second(appended, first),
        details={"outputs_total": len(outputs)},
    )


async def paced_arm(
    ctx: Context,
    rate: float,
    seconds: float,
    warmup: int = 500,
    *,
    label: str = "paced",
    src: Path = REPO,
) -> dict[str, Any]:
    """Latency at a fixed offered rate: a fresh requests topic, filled while the worker runs.

    The worker starts on an empty topic; ``warmup`` requests make sure it has its
    partitions and a warm path before anything is timed, then two idle seconds
    measure what the worker costs doing nothing, then requests are published at
    ``rate`` per second for ``seconds``. Latency per request: the broker's append
    time of its response minus the moment the request was created (handed to
    the producer, also its ``created_at``).
    """
    stack, load = ctx.stack, ctx.load
    requests = f"{label}.requests"
    topics_file = await stack.create_arm_topics(label, requests=requests)
    responses, dead_letters = worker_topics(stack, label)
    count = min(len(load) - warmup, max(1, int(rate * seconds)))
    warm, timed = range(warmup), range(warmup, warmup + count)
    await stack.share_keys(label)
    spec = worker_specs(stack, label, src, topics_file, 1)[0]
    procs = [spawn_worker(spec, stack)]
    sampler = _sampler(ctx, procs)
    topic = stack.topic(requests)
    try:
        async with Topics(stack.bootstrap, [responses, dead_letters]) as out:
            task = ctx.progress.add_task(f"{label} warm-up", total=warmup)
            await publish_paced(
                stack.bootstrap, topic, load, warm, rate=1000.0, tick=lambda _: None
            )
            await _wait(label, out, {responses: warmup}, procs, ctx=ctx, task=task)
            idle_from = time.time()
            await asyncio.sleep(2.0)
            sampler.sample()
            idle_cpu_pct = sampler.series[procs[0].label].between(idle_from, time.time()) / (
                time.time() - idle_from
            )
            task = ctx.progress.add_task(f"{label} {rate:,.0f}/s", total=warmup + count)
            sent = await publish_paced(
                stack.bootstrap,
                topic,
                load,
                timed,
                rate=rate,
                tick=lambda i: ctx.progress.update(task, completed=warmup + i),
            )
            want = {
                responses: warmup + count,
                dead_letters: sum(load.samples[i].dead_letter for i in (*warm, *timed)),
            }
            await _wait(label, out, want, procs, ctx=ctx, task=task)
            peak = memory_mb(procs[0].pid).get("VmHWM", float("nan"))
            stages = await asyncio.to_thread(stage_seconds, spec)
            await sampler.stop()
            await _stop_all(procs)
            outputs = await out.read_all()
    finally:
        await _stop_all(procs)
    created = {(s.partition, s.offset): s.created for s in sent}
    latency, received, waited, handled = [], [], [], []
    timed_latency: list[tuple[float, float]] = []
    for record in outputs:
        if record.topic != responses:
            continue
        meta = orjson.loads(record.value)["meta"]
        at = created.get((meta["source"]["partition"], meta["source"]["offset"]))
        if at is not None:
            took = _epoch(meta["received_at"])
            latency.append(record.appended_ms - at * 1000)
            timed_latency.append((at, latency[-1]))
            received.append(took)
            # Created -> taken by the pipeline (fetch, feed, the batch before), then
            # taken -> published (the batch's own processing, insert and publish).
            waited.append((took - at) * 1000)
            handled.append(record.appended_ms - took * 1000)
    first, last = sent[0].created, sent[-1].created
    end = max(r.appended_ms for r in outputs) / 1000
    return {
        "offered_rate_rps": round(rate, 1),
        "achieved_rate_rps": round((len(sent) - 1) / max(last - first, 1e-9), 1),
        "requests": len(sent),
        "latency": summary_ms(latency),
        "latency_created_to_taken": summary_ms(waited),
        "latency_taken_to_published": summary_ms(handled),
        "latencies_ms": latency,
        # Stalls show as seconds whose p99 stands out; their time points at the cause.
        "latency_per_second": latency_per_second(timed_latency, first),
        "idle_cpu_pct_of_one_core": round(idle_cpu_pct * 100, 2),
        "cpu_s_per_1k": round(sampler.series[procs[0].label].between(first, end) / count * 1000, 4),
        "peak_rss_mb": round(peak, 1),
        "stage_seconds": stages,
        "cpu_pct_of_one_core": _cpu_pct(sampler, [procs[0].label], first, end),
        **_batches(received),
    }
