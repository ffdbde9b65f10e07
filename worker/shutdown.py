"""Graceful shutdown within a bounded time, and exits the worker asks for itself.

On SIGTERM (or Ctrl-C) Faust stops the worker in this order: the fetcher stops
(nothing new is consumed), Faust waits until every message already handed to
the batch loop is acknowledged (so the batch in flight finishes: rows flushed
to ClickHouse, responses confirmed by the broker) and commits the acknowledged
offsets, then the producer is flushed, the sink and the rate limiter close, and
the consumer leaves the group.

That wait has no end of its own when a dependency is down (the batch retries
until it is back). :class:`Shutdown` bounds it: once stopping began, a timer
thread, which runs even if the event loop is stuck, ends the process after
``WORKER_SHUTDOWN_TIMEOUT_S``. Nothing is lost then either: what was not
acknowledged is not committed and is consumed again by the next worker.

Exit codes: 0 after a graceful stop, :data:`EXIT_SHUTDOWN_TIMEOUT` when the
deadline passed, :data:`EXIT_STALLED` when the worker stopped itself because a
partition stalled (``WORKER_EXIT_ON_STALL``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from faust.worker import Worker

from worker.observability.group import as_text, described

log = logging.getLogger(__name__)

#: The graceful stop did not finish within ``WORKER_SHUTDOWN_TIMEOUT_S``.
EXIT_SHUTDOWN_TIMEOUT = 3
#: The worker stopped itself because a partition stalled (``WORKER_EXIT_ON_STALL``).
EXIT_STALLED = 4


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def _hard_exit(code: int) -> NoReturn:
    _flush_logs()
    # No interpreter shutdown: it would join the sink's thread, which may be the
    # very thing that is stuck (an insert waiting for ClickHouse).
    os._exit(code)


class Shutdown:
    """The deadline of a graceful stop, and the exit code the process ends with."""

    def __init__(
        self,
        timeout_s: float,
        *,
        exit: Callable[[int], Any] = _hard_exit,
        signal_self: Callable[[], None] = lambda: os.kill(os.getpid(), signal.SIGTERM),
    ) -> None:
        self.timeout_s = timeout_s
        self.exit_code = 0
        self._exit = exit
        self._signal_self = signal_self
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._on_arm: list[Callable[[], None]] = []
        self._describe: list[Callable[[], dict[str, Any]]] = []

    def on_stopping(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when stopping begins (readiness closes, checks pause)."""
        self._on_arm.append(callback)

    def describe_with(self, callback: Callable[[], dict[str, Any]]) -> None:
        """Add what ``callback`` returns to the log line of a stop past its deadline."""
        self._describe.append(callback)

    @property
    def armed(self) -> bool:
        """Whether stopping began (the deadline runs)."""
        return self._timer is not None

    def arm(self) -> None:
        """Stopping begins now: end the process at the deadline if it is still running."""
        with self._lock:
            if self._timer is not None:
                return
            self._timer = threading.Timer(self.timeout_s, self._expire)
            self._timer.name = "shutdown-deadline"
            self._timer.daemon = True
            self._timer.start()
        for callback in self._on_arm:
            callback()
        log.info(
            "stopping: no new messages; finishing the batch in flight, then commit (at most %gs)",
            self.timeout_s,
        )

    def request(self, code: int, reason: str) -> None:
        """Stop the worker gracefully and exit with ``code`` (for its supervisor)."""
        if self.exit_code == 0:
            self.exit_code = code
        log.error("stopping the worker (exit code %d): %s", code, reason)
        # The same path as an operator's SIGTERM: Faust's handler runs the graceful stop.
        self._signal_self()

    def _expire(self) -> None:
        code = self.exit_code or EXIT_SHUTDOWN_TIMEOUT
        state = described(*self._describe)
        log.error(
            "graceful stop did not finish within %gs; exiting with code %d. Unacknowledged "
            "messages were not committed and will be consumed again. Operator action: look for "
            "the dependency the batch in flight waited for (retry warnings above). %s",
            self.timeout_s,
            code,
            as_text(state),
            extra=state,
        )
        self._exit(code)

    def finish(self) -> NoReturn:
        """The worker stopped in time: exit with the code asked for (0 by default).

        The deadline stays armed: should the interpreter hang while exiting
        (joining a thread stuck in a call), it still ends the process.
        """
        sys.exit(self.exit_code)


class GracefulWorker(Worker):
    """Faust's worker, starting the shutdown deadline as soon as stopping begins."""

    def __init__(self, *args: Any, shutdown: Shutdown, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shutdown = shutdown

    async def on_stop(self) -> None:
        self.shutdown.arm()
        await super().on_stop()
