"""A failed scenario's row carries the last error lines each worker logged."""

from __future__ import annotations

from typing import Any, cast

from reliability.run import _ERROR_LINES, _errors
from tests.support.worker import WorkerStack


class LoggedStack:
    def __init__(self, lines: list[str]) -> None:
        self._text = "\n".join(lines)

    def logs(self) -> str:
        return self._text


def test_only_error_lines_are_kept_and_only_the_last_ones() -> None:
    lines: list[Any] = [
        '{"level":"info","message":"assigned 4 partitions"}',
        *(f'{{"level":"error","message":"failure {i}"}}' for i in range(_ERROR_LINES + 2)),
        '{"level":"warning","message":"retrying"}',
    ]
    kept = _errors(cast("WorkerStack", LoggedStack(lines)))
    assert kept == [
        f'{{"level":"error","message":"failure {i}"}}' for i in range(2, _ERROR_LINES + 2)
    ]
