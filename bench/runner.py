"""A whole benchmark run: publish once, then the arms in rounds, then the figures.

The machine is shared and has two cores, so absolute figures move from minute
to minute. The arms of one round run back to back on the same messages, the
order rotates from round to round, and the ratios are taken within a round
before the median over rounds is reported with its spread.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from bench import profiling
from bench.arms import ArmResult, Context, baseline_arm, paced_arm, worker_arm
from bench.load import build_workload, publish_all
from bench.options import BenchOptions
from bench.stack import REPO, RunStack, service_pids
from bench.stats import spread

Arm = Callable[[], Awaitable[ArmResult]]


def progress_bars(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def export_revision(rev: str, into: Path) -> Path:
    """The worker's source at ``rev``, unpacked (``git archive``: no worktree, no checkout)."""
    target = into / f"src-{rev}"
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "worker", "topics", "schemas"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def _rounds(
    repeat: int, arms: list[tuple[str, Callable[[int], Arm]]]
) -> list[list[tuple[str, Arm]]]:
    """``repeat`` rounds of the arms, the order rotated by one each round."""
    out = []
    for r in range(repeat):
        shift = r % len(arms)
        order = arms[shift:] + arms[:shift]
        out.append([(key, make(r)) for key, make in order])
    return out


async def run(opts: BenchOptions, console: Console) -> dict[str, Any]:
    started = time.time()
    stack = RunStack.create(opts.bootstrap_servers, signed=opts.signed, worker_env=opts.worker_env)
    console.print(f"run [bold]{stack.run_id}[/bold], work files in {stack.workdir}")
    load = build_workload(
        opts.n, opts.invalid_share, stack.run_id, cache_hit_share=opts.cache_hit_share
    ).signed_by(await stack.create_keys())
    timeout_s = 120 + opts.n / 500
    results: dict[str, Any] = {}
    try:
        with progress_bars(console) as progress:
            ctx = Context(stack, load, progress, service_pids(), timeout_s)
            await stack.create_reference_topics()
            if opts.mode != "paced":
                topic = await stack.create_requests_topic()
                task = progress.add_task("publish requests", total=len(load))
                await publish_all(
                    stack.bootstrap, topic, load, lambda i: progress.update(task, completed=i)
                )
            if opts.mode == "paced":
                results = await _paced(ctx, opts)
            elif opts.mode == "scale":
                results = await _scale(ctx, opts)
            else:
                results = await _single(ctx, opts)
    finally:
        if not opts.keep:
            await stack.delete_topics()
            await asyncio.to_thread(shutil.rmtree, stack.workdir, ignore_errors=True)
    results["run_id"] = stack.run_id
    results["started_at"] = started
    results["finished_at"] = time.time()
    return results


def _sources(ctx: Context, opts: BenchOptions) -> dict[str, Path]:
    """The worker as it is, then each ``--compare-rev``, by label."""
    sources = {"worker": REPO}
    for rev in opts.compare_revs:
        sources[f"rev-{rev}"] = export_revision(rev, ctx.stack.workdir)
    return sources


async def _paced(ctx: Context, opts: BenchOptions) -> dict[str, Any]:
    """Latency and CPU at one offered rate, for the worker and each compared revision."""
    assert opts.paced_rate is not None  # checked by the command line
    sources = _sources(ctx, opts)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in sources}
    for r in range(opts.repeat):
        labels = list(sources)
        shift = r % len(labels)
        for label in labels[shift:] + labels[:shift]:
            run = await paced_arm(
                ctx,
                opts.paced_rate,
                opts.paced_seconds,
                label=f"paced-{label}-r{r}",
                src=sources[label],
            )
            runs[label].append(run)
    arms = {}
    for label, results in runs.items():
        arms[label] = {
            "p50_ms": _median([run["latency"]["p50_ms"] for run in results]),
            "p95_ms": _median([run["latency"]["p95_ms"] for run in results]),
            "p99_ms": _median([run["latency"]["p99_ms"] for run in results]),
            "cpu_s_per_1k": _median([run["cpu_s_per_1k"] for run in results], 4),
            "batches": _median([run["batches"] for run in results], 0),
            "runs": [{k: v for k, v in run.items() if k != "latencies_ms"} for run in results],
        }
    return {
        "mode": "paced",
        "n": len(ctx.load),
        "paced_rate_rps": opts.paced_rate,
        "arms": arms,
        "_series": {
            "per_second": {},
            **{f"latency {label}": runs[label][0]["latencies_ms"] for label in runs},
            "p99_per_second": {
                label: runs[label][0]["latency_per_second"]["p99_ms"] for label in runs
            },
        },
    }


async def _single(ctx: Context, opts: BenchOptions) -> dict[str, Any]:
    sources = _sources(ctx, opts)

    def worker(label: str, src: Path) -> Callable[[int], Arm]:
        return lambda r: lambda: worker_arm(ctx, f"{label}-r{r}", src=src)

    def baseline(kind: str) -> Callable[[int], Arm]:
        return lambda r: lambda: baseline_arm(ctx, kind, f"{kind}-r{r}")

    arms = [(label, worker(label, src)) for label, src in sources.items()]
    arms += [("aiokafka", baseline("aiokafka")), ("faust", baseline("faust"))]
    rounds: list[dict[str, ArmResult]] = []
    for round_arms in _rounds(opts.repeat, arms):
        rounds.append({key: await make() for key, make in round_arms})

    profiles = {}
    if opts.profile_dir is not None:
        opts.profile_dir.mkdir(parents=True, exist_ok=True)
        for label, src in sources.items():
            raw = opts.profile_dir / f"{label}.pyspy.txt"
            await worker_arm(ctx, f"{label}-profile", src=src, profile_to=raw)
            profiles[label] = profiling.summarize(raw)

    throughput = spread([r["worker"].throughput_rps for r in rounds])["median"]
    paced = await paced_arm(ctx, throughput / 2, opts.paced_seconds)
    chdb = _chdb_probe(ctx.stack.workdir / "chdb-probe")
    results = _single_results(rounds, paced, chdb, profiles, list(sources))
    if opts.cache_entries:
        task = ctx.progress.add_task(f"cache to {opts.cache_entries:,} entries", total=None)
        memory = await asyncio.to_thread(_cache_memory, opts.cache_entries)
        ctx.progress.update(task, total=1, completed=1)
        results["cache_rss_growth_mb"] = memory["rss_growth_mb"]
        results["cache_memory"] = memory
    return results


def _median(values: list[float], digits: int = 1) -> float:
    return round(spread(values)["median"], digits)


def _single_results(
    rounds: list[dict[str, ArmResult]],
    paced: dict[str, Any],
    chdb: dict[str, float],
    profiles: dict[str, Any],
    workers: list[str],
) -> dict[str, Any]:
    def each(key: str, attr: str) -> list[float]:
        return [float(getattr(r[key], attr)) for r in rounds]

    def lat(q: str) -> float:
        return _median([r["worker"].summary()["latency_from_consumed"][q] for r in rounds], 2)

    ratio_a = [r["worker"].throughput_rps / r["aiokafka"].throughput_rps for r in rounds]
    ratio_f = [r["worker"].throughput_rps / r["faust"].throughput_rps for r in rounds]
    # The same comparison by CPU per request: what each would do with a core of its
    # own. Every arm here is CPU-bound on its event loop, so on a host whose other
    # tenants take a changing share of the cores this is the steadier ratio.
    cpu_a = [r["aiokafka"].cpu_s_per_1k / r["worker"].cpu_s_per_1k for r in rounds]
    cpu_f = [r["faust"].cpu_s_per_1k / r["worker"].cpu_s_per_1k for r in rounds]
    peak = max(max(r["worker"].peak_rss_mb) for r in rounds)
    out: dict[str, Any] = {
        "mode": "single",
        "n": rounds[0]["worker"].n,
        "throughput_rps": _median(each("worker", "throughput_rps")),
        "aiokafka_baseline_rps": _median(each("aiokafka", "throughput_rps")),
        "faust_baseline_rps": _median(each("faust", "throughput_rps")),
        "ratio_to_aiokafka": _median(ratio_a, 3),
        "ratio_to_faust": _median(ratio_f, 3),
        "cpu_ratio_to_aiokafka": _median(cpu_a, 3),
        "cpu_ratio_to_faust": _median(cpu_f, 3),
        "p50_ms": lat("p50_ms"),
        "p95_ms": lat("p95_ms"),
        "p99_ms": lat("p99_ms"),
        "cpu_s_per_1k": _median(each("worker", "cpu_s_per_1k"), 4),
        "peak_rss_mb": round(peak, 1),
        "half_rate_offered_rps": paced["offered_rate_rps"],
        "half_rate_achieved_rps": paced["achieved_rate_rps"],
        "half_rate_p50_ms": paced["latency"]["p50_ms"],
        "half_rate_p95_ms": paced["latency"]["p95_ms"],
        "half_rate_p99_ms": paced["latency"]["p99_ms"],
        "idle_cpu_pct_of_one_core": paced["idle_cpu_pct_of_one_core"],
        "chdb_rss_mb": round(chdb["chdb_share_mb"], 1),
        "peak_rss_without_chdb_mb": round(peak - chdb["chdb_share_mb"], 1),
        "aiokafka_cpu_s_per_1k": _median(each("aiokafka", "cpu_s_per_1k"), 4),
        "faust_cpu_s_per_1k": _median(each("faust", "cpu_s_per_1k"), 4),
        "spread": {
            "rounds": len(rounds),
            "throughput_rps": spread(each("worker", "throughput_rps")),
            "aiokafka_baseline_rps": spread(each("aiokafka", "throughput_rps")),
            "faust_baseline_rps": spread(each("faust", "throughput_rps")),
            "ratio_to_aiokafka": spread(ratio_a),
            "ratio_to_faust": spread(ratio_f),
            "cpu_ratio_to_aiokafka": spread(cpu_a),
            "cpu_ratio_to_faust": spread(cpu_f),
            "cpu_s_per_1k": spread(each("worker", "cpu_s_per_1k")),
        },
        # CPU the machine spent on processes other than the ones measured, the broker,
        # Redis and this benchmark, in % of one core (of 200): the noise of a shared host.
        "background_cpu_pct": {
            key: [r[key].cpu_pct["everything_else"] for r in rounds] for key in rounds[0]
        }
        | {"half_rate": paced["cpu_pct_of_one_core"]["everything_else"]},
        "chdb_probe": chdb,
        "half_rate": {k: v for k, v in paced.items() if k != "latencies_ms"},
        "rounds": [{key: arm.summary() for key, arm in r.items()} for r in rounds],
    }
    for label in workers[1:]:
        out.setdefault("compare", {})[label] = {
            "throughput_rps": _median(each(label, "throughput_rps")),
            "cpu_s_per_1k": _median(each(label, "cpu_s_per_1k"), 4),
            "ratio_to_current": _median(
                [r[label].throughput_rps / r["worker"].throughput_rps for r in rounds], 3
            ),
            "ratio_to_faust": _median(
                [r[label].throughput_rps / r["faust"].throughput_rps for r in rounds], 3
            ),
        }
    if profiles:
        out["profiles"] = profiles
    # For the chart; stripped before the file is written.
    out["_series"] = {
        "per_second": {key: arm.per_second for key, arm in rounds[0].items()},
        "latency_max_rate_ms": rounds[0]["worker"].latency_ms,
        "latency_half_rate_ms": paced["latencies_ms"],
    }
    return out


async def _scale(ctx: Context, opts: BenchOptions) -> dict[str, Any]:
    def arm(processes: int) -> Callable[[int], Arm]:
        return lambda r: lambda: worker_arm(ctx, f"scale{processes}-r{r}", processes=processes)

    rounds = []
    for round_arms in _rounds(opts.repeat, [("one", arm(1)), ("two", arm(2))]):
        rounds.append({key: await make() for key, make in round_arms})
    one = [r["one"].throughput_rps for r in rounds]
    two = [r["two"].throughput_rps for r in rounds]
    ratios = [r["two"].throughput_rps / r["one"].throughput_rps for r in rounds]
    return {
        "mode": "scale",
        "n": len(ctx.load),
        "one_process_rps": _median(one),
        "two_processes_rps": _median(two),
        "scaling_ratio": _median(ratios, 3),
        "spread": {
            "rounds": len(rounds),
            "one_process_rps": spread(one),
            "two_processes_rps": spread(two),
            "scaling_ratio": spread(ratios),
        },
        "background_cpu_pct": {
            key: [r[key].cpu_pct["everything_else"] for r in rounds] for key in rounds[0]
        },
        # A ratio means little unless both processes got partitions in every round.
        "both_processes_consumed": all(
            r["two"].details["processes_that_consumed"] == 2 for r in rounds
        ),
        "rounds": [{key: a.summary() for key, a in r.items()} for r in rounds],
        "_series": {
            "per_second": {key: a.per_second for key, a in rounds[0].items()},
            "latency_one_process_ms": rounds[0]["one"].latency_ms,
            "latency_two_processes_ms": rounds[0]["two"].latency_ms,
        },
    }


def _json_of(module: str, *args: str, timeout_s: float) -> dict[str, Any]:
    """The JSON object a ``python -m bench.<module>`` process prints."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=timeout_s,
    )
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


def _cache_memory(entries: int) -> dict[str, Any]:
    """RSS of the result cache from empty to ``entries``, in a process of its own."""
    return _json_of("bench.cache_memory", "--entries", str(entries), timeout_s=1800)


def _chdb_probe(directory: Path) -> dict[str, float]:
    return _json_of("bench.chdb_probe", str(directory), timeout_s=300)
