"""``python -m bench``: run the benchmark, print the table, write the results and the chart."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from rich.console import Console

from bench import report, runner
from bench.options import BenchOptions
from bench.stack import services_up


def _pair(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--worker-env")
    return name, value


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--n", default=200_000, show_default=True, help="Requests to publish.")
@click.option("--invalid-share", default=0.05, show_default=True, help="Share of broken requests.")
@click.option(
    "--cache-hit-share",
    default=0.3,
    show_default=True,
    help="Share of valid requests that repeat an earlier question (cache hits).",
)
@click.option(
    "--signed/--unsigned",
    default=True,
    show_default=True,
    help="Sign requests with HMAC keys (else the worker runs with SECURITY_AUTH_MODES=none).",
)
@click.option(
    "--mode",
    type=click.Choice(["single", "scale", "paced"]),
    default="single",
    show_default=True,
    help="single: worker and baselines; scale: 1 process vs 2; paced: latency at --paced-rate.",
)
@click.option("--repeat", default=2, show_default=True, help="Rounds of every arm, interleaved.")
@click.option(
    "--paced-seconds", default=30.0, show_default=True, help="Length of the half-rate run."
)
@click.option(
    "--paced-rate",
    type=float,
    default=None,
    help="Offered requests/s of --mode paced (for the worker and each --compare-rev).",
)
@click.option(
    "--cache-entries",
    default=1_000_000,
    show_default=True,
    help="Entries for the cache memory measurement (0: skip it).",
)
@click.option(
    "--worker-env",
    "worker_env",
    multiple=True,
    help="NAME=VALUE given to every worker process, e.g. WORKER_BATCH_MAX=2000 (repeatable).",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results.json"))
@click.option(
    "--chart", "chart_path", type=click.Path(path_type=Path), default=Path("bench-chart.png")
)
@click.option(
    "--compare-rev",
    "compare_revs",
    multiple=True,
    help="Also measure the worker as of this git revision (repeatable).",
)
@click.option(
    "--profile",
    "profile_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also profile each worker with py-spy in an extra, unmeasured run; raw stacks go here.",
)
@click.option("--keep", is_flag=True, help="Keep the run's topics and work files.")
@click.option("--bootstrap-servers", default="127.0.0.1:9092", show_default=True)
@click.option("--no-services", is_flag=True, help="Do not run services/run.sh up first.")
def main(
    *,
    n: int,
    invalid_share: float,
    cache_hit_share: float,
    signed: bool,
    mode: str,
    repeat: int,
    paced_seconds: float,
    paced_rate: float | None,
    cache_entries: int,
    worker_env: tuple[str, ...],
    out: Path,
    chart_path: Path,
    compare_revs: tuple[str, ...],
    profile_dir: Path | None,
    keep: bool,
    bootstrap_servers: str,
    no_services: bool,
) -> None:
    """Measure the worker against a plain aiokafka loop and a plain Faust agent, same messages."""
    if mode == "paced":
        if paced_rate is None or paced_rate <= 0:
            raise click.UsageError("--mode paced needs --paced-rate, in requests/s")
        needed = 500 + int(paced_rate * paced_seconds)
        if n < needed:
            raise click.UsageError(f"--n {n:,} is too few for the paced run: it needs {needed:,}")
    opts = BenchOptions(
        n=n,
        invalid_share=invalid_share,
        cache_hit_share=cache_hit_share,
        signed=signed,
        mode=mode,  # type: ignore[arg-type]
        repeat=repeat,
        paced_seconds=paced_seconds,
        paced_rate=paced_rate,
        cache_entries=cache_entries,
        worker_env=tuple(_pair(item) for item in worker_env),
        out=out,
        chart=chart_path,
        compare_revs=compare_revs,
        profile_dir=profile_dir,
        keep=keep,
        bootstrap_servers=bootstrap_servers,
    )
    console = Console(stderr=True)
    if not no_services:
        services_up()
    results = asyncio.run(runner.run(opts, console))
    results["options"] = opts.as_json()
    results["notes"] = report.notes(opts)
    results["machine"] = report.machine()
    results["git"] = report.git_revision()
    if mode == "single":
        results["targets"] = report.targets(results)
    # Written before anything is drawn or printed: the measurements are what matters.
    report.write(opts.out, results)
    if mode == "single":
        report.print_single(Console(), results)
    elif mode == "paced":
        report.print_paced(Console(), results)
    else:
        report.print_scale(Console(), results)
    for note in results["notes"]:
        console.print(f"note: {note}")
    # matplotlib comes with the bench extras (make install-bench), not the worker's.
    from bench import chart  # noqa: PLC0415

    chart.draw(opts.chart, results)
    console.print(f"wrote {opts.out} and {opts.chart}")


if __name__ == "__main__":
    sys.exit(main())
