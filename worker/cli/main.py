"""``worker``: run the worker and operate it."""

from __future__ import annotations

import sys

import click

from worker import __version__
from worker.cli import cache, db, demo, dlq, doctor, keys, load, reference, run, schemas, topics
from worker.errors import WorkerError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="worker")
def cli() -> None:
    """A request/response stream worker: Kafka in, ClickHouse and Kafka out.

    Configuration comes from the environment (KAFKA_*, CLICKHOUSE_*, REDIS_*,
    LIMITS_*, SECURITY_*, WORKER_*, CACHE_*); see the README.
    """


cli.add_command(run.run)
cli.add_command(topics.topics)
cli.add_command(schemas.schemas)
cli.add_command(db.db)
cli.add_command(demo.demo)
cli.add_command(keys.keys)
cli.add_command(load.load)
cli.add_command(dlq.dlq)
cli.add_command(doctor.doctor)
cli.add_command(reference.reference)
cli.add_command(cache.cache)


def main() -> None:
    """Console entry point: errors of the worker become a message and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except WorkerError as exc:
        click.echo(f"error [{exc.code}]: {exc.message}", err=True)
        sys.exit(2)
