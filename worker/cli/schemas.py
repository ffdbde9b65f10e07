"""``worker schemas``: export the JSON Schema contracts, or check them for drift."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from worker.contracts.export import drift, write
from worker.operations.registry import default_registry


@click.group()
def schemas() -> None:
    """The event contracts in schemas/, generated from the models."""


@schemas.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="Where the schema files live.",
)
def export(directory: Path) -> None:
    """Write every schema file from the models."""
    for path in write(directory, default_registry()):
        click.echo(f"wrote {path}")


@schemas.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="Where the schema files live.",
)
def check(directory: Path) -> None:
    """Exit 1 if the committed schema files differ from the models."""
    problems = drift(directory, default_registry())
    for problem in problems:
        click.echo(problem)
    if problems:
        click.echo("run `worker schemas export` and commit the result", err=True)
        sys.exit(1)
    click.echo("schemas match the models")
