"""``python -m reliability --profile short|long``: run the fault-injection suite, write the figures.

Starts the suite's own broker and Redis (never the shared ones), runs every
scenario of the profile one after the other, each within its deadline, and
writes ``faults-results.json`` and ``faults-results.md``. Exits 1 when any
scenario failed, so the command is a check as well as a report.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click

from reliability import report
from reliability.profiles import PROFILES
from reliability.run import Run, execute
from reliability.scenarios import scenarios
from reliability.services import REPO, DedicatedServices


async def run_suite(profile_name: str, only: tuple[str, ...], workdir: Path) -> dict[str, Any]:
    profile = PROFILES[profile_name]
    services = DedicatedServices.allocate(REPO / ".services" / f"faults-{uuid.uuid4().hex[:6]}")
    started = time.time()
    rows = []
    click.echo(f"suite services: broker {services.bootstrap}, redis {services.redis_url}", err=True)
    await asyncio.to_thread(services.up)
    try:
        for name, script in scenarios(profile):
            if only and name not in only:
                continue
            click.echo(f"{name}: running (deadline {profile.deadline_s:.0f}s)…", err=True)
            run = Run(name, profile, services, workdir / name)
            row = await execute(run, script)
            rows.append(row)
            verdict = "passed" if row["passed"] else f"FAILED {row['error'] or ''}"
            click.echo(
                f"{name}: {verdict} sent={row['sent']} lost={row['lost']} "
                f"dupFINAL={row['duplicates_final']} in {row['seconds']}s",
                err=True,
            )
    finally:
        await asyncio.to_thread(services.down)
    return {
        "profile": profile.as_json(),
        "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "git": report.git_revision(),
        "machine": report.machine(),
        "scenarios": rows,
        "passed": bool(rows) and all(row["passed"] for row in rows),
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", type=click.Choice(sorted(PROFILES)), default="long", show_default=True)
@click.option("--only", multiple=True, help="Run only this scenario (repeatable).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("faults-results.json"))
@click.option(
    "--markdown", "md", type=click.Path(path_type=Path), default=Path("faults-results.md")
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Worker data and logs (default: .data/faults/<time>).",
)
def main(profile: str, only: tuple[str, ...], out: Path, md: Path, workdir: Path | None) -> None:
    """Kill, stop and starve the worker under load; count what was lost, doubled, dead-lettered."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    workdir = workdir or REPO / ".data" / "faults" / time.strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run_suite(profile, only, workdir))
    report.write(out, md, results)
    click.echo(report.markdown(results))
    click.echo(f"wrote {out} and {md}; worker logs in {workdir}", err=True)
    sys.exit(0 if results["passed"] else 1)


if __name__ == "__main__":
    main()
