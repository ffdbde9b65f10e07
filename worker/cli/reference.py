"""``worker reference``: publish reference data (products, rates) to its compacted topics."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from worker.settings import load_settings


@click.group()
def reference() -> None:
    """Reference data the operations join requests with (reference.products, reference.rates).

    Workers read these topics into global tables and, when a record changes,
    drop the cached answers that depended on it.
    """


@reference.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
def load(path: Path) -> None:
    """Publish the records of a JSON file: {"products": [...], "rates": [...]}."""
    from worker.reference.publish import ReferenceData, publish_reference
    from worker.topology import load_topology

    settings = load_settings()
    data = ReferenceData.from_file(path)
    topology = load_topology(settings.worker.topics_file)
    sent = asyncio.run(publish_reference(settings.kafka, topology, data))
    click.echo(f"published {sent} reference records from {path}")


@reference.command()
@click.option("--print", "show", is_flag=True, help="Print the records instead of publishing.")
def seed(show: bool) -> None:
    """Publish the demo catalog (the products and rates the sample requests use)."""
    from worker.reference.publish import demo_reference_data, dump, publish_reference
    from worker.topology import load_topology

    data = demo_reference_data()
    if show:
        sys.stdout.buffer.write(dump(data))
        return
    settings = load_settings()
    topology = load_topology(settings.worker.topics_file)
    sent = asyncio.run(publish_reference(settings.kafka, topology, data))
    click.echo(f"published {sent} reference records (demo catalog)")
