"""The shutdown deadline: armed when stopping begins, ending the process if stopping hangs."""

from __future__ import annotations

import logging
import threading

import pytest

from worker.shutdown import EXIT_SHUTDOWN_TIMEOUT, EXIT_STALLED, Shutdown


class Exits:
    """Records exit codes instead of ending the test process."""

    def __init__(self) -> None:
        self.codes: list[int] = []
        self.done = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.done.set()


def test_a_stop_that_hangs_ends_the_process_at_the_deadline() -> None:
    exits = Exits()
    shutdown = Shutdown(0.05, exit=exits, signal_self=lambda: None)
    stopping: list[str] = []
    shutdown.on_stopping(lambda: stopping.append("closed readiness"))
    assert not shutdown.armed
    shutdown.arm()
    shutdown.arm()  # a second signal neither restarts the deadline nor calls back twice
    assert shutdown.armed
    assert stopping == ["closed readiness"]
    assert exits.done.wait(10)
    assert exits.codes == [EXIT_SHUTDOWN_TIMEOUT]


def test_a_requested_exit_signals_the_process_and_keeps_its_code() -> None:
    exits = Exits()
    signals: list[str] = []
    shutdown = Shutdown(0.05, exit=exits, signal_self=lambda: signals.append("SIGTERM"))
    shutdown.request(EXIT_STALLED, "partition stalled")
    shutdown.request(99, "a second reason does not replace the first code")
    assert signals == ["SIGTERM", "SIGTERM"]
    shutdown.arm()
    assert exits.done.wait(10)
    assert exits.codes == [EXIT_STALLED]


def test_a_stop_in_time_exits_with_the_requested_code() -> None:
    shutdown = Shutdown(60, exit=Exits(), signal_self=lambda: None)
    with pytest.raises(SystemExit) as clean:
        shutdown.finish()
    assert clean.value.code == 0
    shutdown.request(EXIT_STALLED, "stalled")
    with pytest.raises(SystemExit) as stalled:
        shutdown.finish()
    assert stalled.value.code == EXIT_STALLED


def test_a_stop_past_its_deadline_logs_what_it_was_told_and_still_exits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exits = Exits()
    shutdown = Shutdown(0.05, exit=exits, signal_self=lambda: None)
    shutdown.describe_with(lambda: {"coordinator_id": None, "commit_locked": True})

    def broken() -> dict[str, object]:
        raise RuntimeError("no consumer")

    shutdown.describe_with(broken)
    with caplog.at_level(logging.ERROR, logger="worker.shutdown"):
        shutdown.arm()
        assert exits.done.wait(10)
    assert exits.codes == [EXIT_SHUTDOWN_TIMEOUT]
    [record] = [r for r in caplog.records if "did not finish" in r.getMessage()]
    message = record.getMessage()
    assert "coordinator_id=None, commit_locked=True" in message
    assert "described=failed: RuntimeError('no consumer')" in message
    assert record.__dict__["commit_locked"] is True
