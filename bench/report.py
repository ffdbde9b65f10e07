"""The results file, the printed table, and the issue's targets next to the figures."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from bench.options import BenchOptions
from bench.stack import REPO

TARGETS = {
    "ratio_to_faust": (">=", 3.0),
    "ratio_to_aiokafka": (">=", 0.25),
    # Not the measure (that is throughput), but where it would land on a
    # host with a core per process: shown against the same bounds.
    "cpu_ratio_to_faust": (">=", 3.0),
    "cpu_ratio_to_aiokafka": (">=", 0.25),
    "half_rate_p99_ms": ("<=", 50.0),
    "cache_rss_growth_mb": ("<=", 200.0),
}


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load average says how shared it was)."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    with open("/proc/meminfo", encoding="ascii") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
        "versions": {
            name: metadata.version(name)
            for name in ("faust-streaming", "aiokafka", "chdb", "clickhouse-connect", "orjson")
        },
    }


def git_revision() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=False)
        return done.stdout.decode().strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def notes(opts: BenchOptions) -> list[str]:
    """What the figures do and do not cover, said in the results themselves."""
    auth = (
        "HMAC signatures verified per request (one key per tenant, looked up once per batch)"
        if opts.signed
        else "no authentication (SECURITY_AUTH_MODES=none)"
    )
    out = [
        "The measured flow is limits and decode, " + auth + ", validation, authorization, "
        "replay check, rate limit, cache lookup, process, cache store, persist and respond.",
        f"--cache-hit-share {opts.cache_hit_share}: that share of valid requests repeats a "
        "question asked at least 8,000 requests earlier, keyed by its cache key; the measured "
        "hit share is in each worker arm's 'cache' counts.",
        "Rate limits are set to 1e9/s per tenant: the limiter still makes its one Redis round "
        "trip per batch, but every request goes through the whole flow.",
        "Output topics use LogAppendTime: 'published' is the broker's append time.",
    ]
    out.append(
        "RSS with a ClickHouse server instead of chDB: not measured (no server on this machine); "
        "peak_rss_without_chdb_mb subtracts chDB's share measured by a probe process instead."
    )
    return out


def targets(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (op, bound) in TARGETS.items():
        value = results.get(key)
        if value is None:
            continue
        met = value >= bound if op == ">=" else value <= bound
        out[key] = {"value": value, "target": f"{op} {bound}", "met": met}
    return out


def write(path: Path, results: dict[str, Any]) -> None:
    public = {k: v for k, v in results.items() if not k.startswith("_")}
    path.write_bytes(
        orjson.dumps(public, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def print_single(console: Console, results: dict[str, Any]) -> None:
    spread = results["spread"]
    table = Table(title=f"request-worker benchmark, n={results['n']:,}, "
                  f"{spread['rounds']} round(s): median [min - max]")  # fmt: skip
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("spread", justify="right")
    table.add_column("target", justify="right")
    for key in (
        "throughput_rps", "aiokafka_baseline_rps", "faust_baseline_rps", "ratio_to_aiokafka",
        "ratio_to_faust", "cpu_ratio_to_aiokafka", "cpu_ratio_to_faust", "p50_ms", "p95_ms",
        "p99_ms", "half_rate_offered_rps",
        "half_rate_p50_ms", "half_rate_p95_ms", "half_rate_p99_ms", "cpu_s_per_1k",
        "aiokafka_cpu_s_per_1k", "faust_cpu_s_per_1k", "peak_rss_mb", "chdb_rss_mb",
        "peak_rss_without_chdb_mb", "cache_rss_growth_mb", "idle_cpu_pct_of_one_core",
    ):  # fmt: skip
        if key not in results:
            continue  # not measured in this run (e.g. --cache-entries 0)
        s = spread.get(key)
        span = f"[{_fmt(s['min'])} - {_fmt(s['max'])}]" if s else ""
        target = results["targets"].get(key)
        verdict = ""
        if target:
            verdict = f"{target['target']} {'met' if target['met'] else 'MISSED'}"
        table.add_row(key, _fmt(results[key]), span, verdict)
    for label, figures in results.get("compare", {}).items():
        rev = label.removeprefix("rev-")
        table.add_row(f"{rev}: throughput_rps", _fmt(figures["throughput_rps"]), "", "")
        table.add_row(f"{rev}: cpu_s_per_1k", _fmt(figures["cpu_s_per_1k"]), "", "")
        table.add_row(f"{rev}: ratio_to_faust", _fmt(figures["ratio_to_faust"]), "", "")
        table.add_row(f"now / {rev}", _fmt(1 / figures["ratio_to_current"]), "", "")
    console.print(table)


def print_scale(console: Console, results: dict[str, Any]) -> None:
    spread = results["spread"]
    table = Table(title=f"scaling, n={results['n']:,}, {spread['rounds']} round(s)")
    table.add_column("figure")
    table.add_column("median", justify="right")
    table.add_column("spread", justify="right")
    for key in ("one_process_rps", "two_processes_rps", "scaling_ratio"):
        s = spread[key]
        table.add_row(key, _fmt(results[key]), f"[{_fmt(s['min'])} - {_fmt(s['max'])}]")
    console.print(table)


def print_paced(console: Console, results: dict[str, Any]) -> None:
    table = Table(title=f"latency at {results['paced_rate_rps']:,.0f} requests/s offered")
    for column in ("arm", "p50_ms", "p95_ms", "p99_ms", "cpu_s_per_1k", "batches"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    for label, arm in results["arms"].items():
        table.add_row(
            label,
            *(_fmt(arm[key]) for key in ("p50_ms", "p95_ms", "p99_ms", "cpu_s_per_1k", "batches")),
        )
    console.print(table)
