"""``worker doctor``: check the configuration and every dependency, and say what to fix."""

from __future__ import annotations

import asyncio
import sys

import click

from worker.errors import ConfigurationError
from worker.settings import load_settings

_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


@click.command()
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds to wait for each dependency.",
)
def doctor(timeout_s: float) -> None:
    """Check configuration, Kafka and the declared topics, Redis, ClickHouse and a running worker.

    Prints one line per check with what to fix; exits 1 if any check failed.
    Embedded chDB can only be checked while no worker holds it.
    """
    from rich.console import Console
    from rich.table import Table

    from worker.doctor import Finding, configuration_findings, run_checks

    console = Console()
    findings: list[Finding]
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        findings = configuration_findings(exc)
    else:
        with console.status("checking Kafka, Redis, ClickHouse and the worker..."):
            findings = asyncio.run(run_checks(settings, timeout_s=timeout_s))
    table = Table("check", "status", "detail", "what to do", title="worker doctor")
    for finding in findings:
        style = _STYLE[finding.status]
        table.add_row(
            finding.check, f"[{style}]{finding.status}[/{style}]", finding.detail, finding.fix
        )
    console.print(table)
    failed = [f for f in findings if f.status == "fail"]
    if failed:
        console.print(f"[bold red]{len(failed)} checks failed[/bold red]")
        sys.exit(1)
    console.print("[green]everything the worker needs is in place[/green]")
