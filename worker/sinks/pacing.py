"""How the sink reacts to a failing ClickHouse: classify the failure, back off, adapt.

Pure logic, no I/O: :func:`classify` turns whatever the client raised into the
worker's error tree, and :class:`InsertPacer` decides how long to wait before
the next attempt, how far apart inserts must be, and how large they may be.

The two overload reactions differ on purpose. TOO_MANY_PARTS means the server
cannot merge parts as fast as inserts create them: smaller inserts would make it
worse, so the pacer *spaces inserts out*; while it waits, Faust's buffer fills,
and the next batch the agent takes is a full one, so each insert carries more
rows. MEMORY_LIMIT_EXCEEDED and timeouts mean one insert was too heavy: the
pacer also *halves the rows per insert* for the slices that follow, and grows
them back after a run of successes. A chunk already sent is always retried as
it was, with the same deduplication token.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from worker.errors import DatabaseError, DatabaseOverloadedError

_CODE = re.compile(r"\bCode: (\d+)")

#: ClickHouse error codes that mean "overloaded, slow down": name, and whether
#: the insert itself was too heavy (so later inserts should be smaller).
OVERLOAD_CODES: dict[int, tuple[str, bool]] = {
    159: ("TIMEOUT_EXCEEDED", True),
    173: ("CANNOT_ALLOCATE_MEMORY", True),
    202: ("TOO_MANY_SIMULTANEOUS_QUERIES", False),
    241: ("MEMORY_LIMIT_EXCEEDED", True),
    252: ("TOO_MANY_PARTS", False),
}


def clickhouse_code(exc: BaseException) -> int | None:
    """The ClickHouse error code in an exception's message (``Code: 252. DB::Exception…``)."""
    match = _CODE.search(str(exc))
    return int(match[1]) if match else None


def classify(exc: BaseException) -> DatabaseError:
    """What a failed insert means for the worker: overloaded, or unavailable/failed."""
    if isinstance(exc, DatabaseError):
        return exc
    code = clickhouse_code(exc)
    message = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else repr(exc)
    if code in OVERLOAD_CODES:
        name, shrink = OVERLOAD_CODES[code]
        return DatabaseOverloadedError(code, name, message, shrink=shrink)
    return DatabaseError(
        f"ClickHouse insert failed: {message}",
        details={"clickhouse_code": code, "exception": type(exc).__name__},
    )


@dataclass(slots=True)
class InsertPacer:
    """Backoff, spacing and size of inserts, adapted to how ClickHouse answers.

    - :meth:`failed` returns the wait before the next attempt: capped exponential
      backoff from ``retry_base_s`` to ``retry_max_s``, and never less than the
      current pause after an overload error.
    - :attr:`pause_s` is the minimum interval between the starts of two
      inserts: zero normally, doubled (from ``overload_pause_min_s``, up to
      ``retry_max_s``) on every overload error, halved on every success.
    - :attr:`max_rows` is the largest insert for slices not yet sent: halved
      (down to ``min_rows``) on memory and timeout errors, doubled back towards
      ``insert_max_rows`` after ``grow_after`` successes in a row.
    """

    insert_max_rows: int
    min_rows: int = 100
    retry_base_s: float = 0.1
    retry_max_s: float = 10.0
    overload_pause_min_s: float = 1.0
    grow_after: int = 10
    max_rows: int = field(init=False)
    pause_s: float = field(default=0.0, init=False)
    _successes: int = field(default=0, init=False)
    _last_start: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        self.min_rows = min(self.min_rows, self.insert_max_rows)
        self.max_rows = self.insert_max_rows

    def failed(self, error: DatabaseError, attempt: int) -> float:
        """Record a failed attempt (``attempt`` counts from 0); return the wait before the next."""
        # The exponent is capped: 2.0 ** 1024 overflows, some three hours into an outage.
        delay = min(self.retry_base_s * 2.0 ** min(attempt, 64), self.retry_max_s)
        self._successes = 0
        if isinstance(error, DatabaseOverloadedError):
            self.pause_s = min(max(self.pause_s * 2, self.overload_pause_min_s), self.retry_max_s)
            if error.shrink:
                self.max_rows = max(self.min_rows, self.max_rows // 2)
            delay = max(delay, self.pause_s)
        return delay

    def succeeded(self) -> None:
        """Record a confirmed insert: relax the pause, and grow inserts back in time."""
        self.pause_s = 0.0 if self.pause_s / 2 < 0.05 else self.pause_s / 2
        self._successes += 1
        if self.max_rows < self.insert_max_rows and self._successes >= self.grow_after:
            self.max_rows = min(self.insert_max_rows, self.max_rows * 2)
            self._successes = 0

    def wait_before_insert(self, now: float) -> float:
        """How long to wait at ``now`` (monotonic seconds) before starting an insert."""
        return max(0.0, self._last_start + self.pause_s - now)

    def started(self, now: float) -> None:
        """Note that an insert starts at ``now``."""
        self._last_start = now
