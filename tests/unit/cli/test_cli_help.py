"""The command line documents itself: every command and every option has help text."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from worker.cli.main import cli


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield " ".join((*path, name)), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


ALL = dict(commands(cli))


def test_the_commands_the_operations_guide_names_exist() -> None:
    assert {
        "run",
        "topics create",
        "topics check",
        "schemas export",
        "schemas check",
        "db migrate",
        "db query",
        "demo",
        "load",
        "doctor",
        "dlq inspect",
        "dlq replay",
    } <= set(ALL)


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_command_and_option_has_help(name: str) -> None:
    command = ALL[name]
    assert (command.help or "").strip(), f"`worker {name}` has no help text"
    undocumented = [
        param.name
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert not undocumented, f"`worker {name}`: options without help: {undocumented}"


@pytest.mark.parametrize("name", sorted(ALL))
def test_help_renders(name: str) -> None:
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
