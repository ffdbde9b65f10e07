"""CPU and memory of processes, read from /proc while they run.

CPU is ``utime + stime`` of ``/proc/PID/stat`` (every thread of the process,
chDB's included), in clock ticks. The sampler records it with a timestamp every
50 ms, so the CPU of any time window (from the first request consumed to the
last response published) can be read off afterwards: start-up (imports, chDB,
group join) and shutdown fall outside the window and are not charged.
Peak RSS is ``VmHWM`` of ``/proc/PID/status``, read just before the process is
stopped.

The main thread's ``/proc/PID/schedstat`` is sampled too: the time it ran and
the time it was runnable but waited for a core. The event loop lives on the
main thread, so "ran + waited" near 100% of a window means the process was
CPU-bound there, and a large "waited" share means other processes on this
shared host held the cores.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import time
from dataclasses import dataclass, field

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU of ``pid`` so far, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name may contain spaces; the fields after it are fixed.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def memory_mb(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (peak) of ``pid`` in MiB; empty if it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    out[name] = int(value.split()[0]) / 1024
    except OSError:
        return {}
    return out


def main_thread_sched(pid: int) -> tuple[float, float] | None:
    """Seconds the main thread of ``pid`` ran, and waited runnable for a core."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
            ran, waited, _ = f.read().split()
    except (OSError, ValueError):
        return None
    return int(ran) / 1e9, int(waited) / 1e9


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (from /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) * TICK_S


@dataclass
class Series:
    """Timestamped cumulative CPU seconds of one process (or of the machine)."""

    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, t: float, value: float | None) -> None:
        if value is not None:
            self.times.append(t)
            self.cpu.append(value)

    def between(self, start: float, end: float) -> float:
        """CPU seconds spent in [start, end], widened to the enclosing samples."""
        if not self.times:
            return float("nan")
        i = max(0, bisect.bisect_right(self.times, start) - 1)
        j = min(len(self.times) - 1, bisect.bisect_left(self.times, end))
        return self.cpu[j] - self.cpu[i]


class Sampler:
    """Samples the CPU of named processes and of the whole machine every ``interval``."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self.pids = dict(pids)
        self.interval = interval
        self.series: dict[str, Series] = {name: Series() for name in pids}
        self.main_ran: dict[str, Series] = {name: Series() for name in pids}
        self.main_waited: dict[str, Series] = {name: Series() for name in pids}
        self.machine = Series()
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        now = time.time()
        for name, pid in self.pids.items():
            self.series[name].add(now, cpu_seconds(pid))
            sched = main_thread_sched(pid)
            if sched is not None:
                self.main_ran[name].add(now, sched[0])
                self.main_waited[name].add(now, sched[1])
        self.machine.add(now, machine_busy_seconds())

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self.sample()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
