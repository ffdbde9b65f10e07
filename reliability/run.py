"""One scenario's run: its workers, its load, its lag sampler, its deadline and its figures.

A scenario script (``reliability.scenarios``) starts workers and load through a
:class:`Run`, breaks something while the load goes on, and records when the
fault ended and what evidence shows the fault really happened (``checks``).
:func:`execute` then drains the outputs, stops the workers, reads ClickHouse and
turns it all into one result row. The whole of it is bounded by the profile's
deadline: a scenario that exceeds it is stopped, measured as far as possible
and reported as failed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from reliability.load import Load, LoadResult, Position
from reliability.observe import LagSampler, Outputs, Stored, read_outputs, stored
from reliability.profiles import Profile
from reliability.services import DedicatedServices
from reliability.traffic import LIMITS, Signer, messages
from tests.support.worker import WorkerStack
from worker.loadgen import TENANTS

log = logging.getLogger(__name__)

ASSIGNED = r"assigned [1-9]\d* partitions"


@dataclass
class Run:
    """What a scenario script works with, and what it leaves for the measurement."""

    name: str
    profile: Profile
    services: DedicatedServices
    root: Path
    stacks: list[WorkerStack] = field(default_factory=list)
    load: Load | None = None
    sampler: LagSampler | None = None
    fault_end: float | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: Run after the outputs were read, while the workers still run (to read their metrics).
    before_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def stack(self, **env: str) -> WorkerStack:
        """A worker stack of its own topics and group on the suite's services."""
        first = self.stacks[0] if self.stacks else None
        stack = WorkerStack(
            self.services.bootstrap,
            self.services.redis_url,
            self.root / f"worker{len(self.stacks)}",
            extra_env={**LIMITS, "WORKER_LOG_LEVEL": "info", **env},
        )
        if first is not None:  # a peer: the same topics, group, keys and Redis prefix
            stack.run_id = first.run_id
            stack.master_key = first.master_key
            stack.keys = first.keys
        stack.root.mkdir(parents=True)
        self.stacks.append(stack)
        return stack

    @property
    def main(self) -> WorkerStack:
        return self.stacks[0]

    async def start(self, stack: WorkerStack) -> None:
        """Start ``stack``'s worker and wait until the group gave it partitions."""
        stack.start()
        await asyncio.to_thread(stack.wait_for_log, ASSIGNED, timeout_s=120)

    async def begin(
        self, stack: WorkerStack, *, full_poison: bool = False, seconds: float = 0
    ) -> None:
        """Create the topics and keys, start the worker, then the load and the lag sampler."""
        await asyncio.to_thread(stack.create_topics)
        keys = {t: await asyncio.to_thread(stack.key_for, t) for t in TENANTS}
        count = int(self.profile.rate * max(seconds, self.profile.seconds))
        batch = messages(
            Signer(keys),
            count,
            poison_every=3 if full_poison else self.profile.poison_every,
            full_poison=full_poison,
            run_id=stack.run_id,
        )
        await self.start(stack)
        topics = stack.topics
        self.sampler = LagSampler(self.services.bootstrap, stack.run_id, topics.requests)
        self.sampler.start()
        self.load = Load(self.services.bootstrap, topics.requests, batch, self.profile.rate)
        self.load.start()

    async def until_fault(self) -> None:
        """Sleep until the profile's fault time into the load."""
        await asyncio.sleep(self.profile.fault_at_s)

    def fault_ended(self) -> None:
        self.fault_end = time.time()

    async def wait_exit(self, stack: WorkerStack, timeout_s: float = 120) -> int:
        return await asyncio.to_thread(stack.wait_exit, timeout_s)

    def wipe(self, path: Path) -> None:
        shutil.rmtree(path)

    async def metric(self, stack: WorkerStack, name: str) -> float:
        """The sum of a metric's samples on ``stack``'s running worker (``/metrics``)."""
        url = f"http://127.0.0.1:{stack.web_port}/metrics"

        def scrape() -> str:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return str(answer.read().decode())

        text = await asyncio.to_thread(scrape)
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )


Script = Callable[[Run], Awaitable[None]]


@dataclass
class Figures:
    """The accounting of one scenario, by source position."""

    row: dict[str, Any]
    ok: bool


def _recovery(run: Run, outputs: Outputs) -> float | None:
    if run.fault_end is None:
        return None
    after = [o.timestamp_s for o in outputs.responses if o.timestamp_s >= run.fault_end]
    return round(min(after) - run.fault_end, 2) if after else None


def figures(run: Run, load: LoadResult, outputs: Outputs, stores: list[Stored]) -> Figures:
    """Sent against answered, dead-lettered and stored: the row of the results table."""
    sent = load.sent
    answers: dict[Position, list[str]] = {}
    for response in outputs.responses:
        answers.setdefault(response.position, []).append(response.code)
    dead: dict[Position, list[str]] = {}
    for letter in outputs.dead_letters:
        dead.setdefault(letter.position, []).append(letter.code)
    rows = Counter(position for store in stores for position in store.rows)
    final = Counter(key for store in stores for key in store.final_rows)

    no_output = [p for p in sent if p not in answers and p not in dead]
    # A message's row may have been merged into the row of a later message under the
    # same tenant and request id (a replay): then its identity is still stored.
    no_row = [
        p for p, m in sent.items() if p not in rows and (m.identity() or ("", "")) not in final
    ]
    lost = len(set(no_output) | set(no_row))
    wrong = sum(
        1 for p, m in sent.items() if p in answers and any(code != m.code for code in answers[p])
    )
    expected_dead = Counter(m.dead_letter for m in sent.values() if m.dead_letter)
    dead_by_reason = Counter(reasons[0] for p, reasons in dead.items() if p in sent)
    stored_dead = Counter(reason for store in stores for reason, _ in store.dead_letters)
    unsolicited = len(outputs.positions() - set(sent))
    row: dict[str, Any] = {
        "scenario": run.name,
        "sent": len(sent),
        "send_failed": load.failed,
        "poison": sum(m.poison is not None for m in sent.values()),
        "responses": len(outputs.responses),
        "dead_letters": len(outputs.dead_letters),
        "lost": lost,
        "missing_outputs": len(no_output),
        "missing_rows": len(no_row),
        "missing_by_kind": dict(
            Counter(sent[p].poison or "valid" for p in set(no_output) | set(no_row))
        ),
        "clickhouse_rows": sum(rows.values()),
        "duplicates_raw": sum(rows.values()) - len(rows),
        "clickhouse_rows_final": sum(final.values()),
        "duplicates_final": sum(final.values()) - len(final),
        "output_duplicates": sum(len(codes) - 1 for codes in answers.values()),
        "output_missing": len(no_output),
        "dead_letter_duplicates": sum(len(r) - 1 for r in dead.values()),
        "dead_letters_by_reason": dict(sorted(dead_by_reason.items())),
        "poison_dead_letters_expected": dict(sorted(expected_dead.items())),
        "dead_letter_rows_by_reason": dict(sorted(stored_dead.items())),
        "wrong_answers": wrong,
        "unsolicited": unsolicited,
        "usage_counted": sum(store.counted for store in stores),
        # The usage views count every insert; rows of one message inserted twice show
        # here even after a background merge collapsed them in ``requests``.
        "usage_overcount": sum(store.counted for store in stores) - len(sent),
        "recovery_s": _recovery(run, outputs),
        "max_lag": run.sampler.max_lag if run.sampler else None,
        "checks": dict(run.checks),
        "notes": list(run.notes),
        **run.extra,
    }
    ok = (
        lost == 0
        and row["duplicates_final"] == 0
        and dead_by_reason == expected_dead
        and wrong == 0
        and unsolicited == 0
        and load.failed == 0
        and all(run.checks.values())
    )
    return Figures(row, ok)


async def _drain(run: Run, deadline: float) -> Outputs:
    load = run.load
    assert load is not None
    want = set(load.result.sent)
    topics = run.main.topics
    return await read_outputs(
        run.services.bootstrap,
        topics.responses,
        topics.dead_letters,
        until=lambda out: want <= out.positions(),
        timeout_s=max(5.0, deadline - time.monotonic()),
        settle_s=3,
    )


async def _stop_all(run: Run) -> None:
    for stack in run.stacks:
        if stack.alive():
            try:
                code = await asyncio.to_thread(stack.stop, 60)
            except Exception:
                log.exception("worker of %s did not stop; killing it", run.name)
                stack.kill()
                code = -9
            run.checks.setdefault("workers stopped gracefully (exit 0)", True)
            if code != 0:
                run.checks["workers stopped gracefully (exit 0)"] = False


async def _scripted(run: Run, script: Script, deadline: float) -> tuple[Outputs, str | None]:
    """The script, the rest of the load and the drain, within the deadline; outputs, error."""
    try:
        async with asyncio.timeout_at(asyncio.get_running_loop().time() + run.profile.deadline_s):
            await script(run)
            assert run.load is not None
            await run.load.wait()
            outputs = await _drain(run, deadline)
            if run.sampler is not None:
                lag = await run.sampler.settled(timeout_s=20)
                run.extra["final_lag"] = lag
                run.checks["every offset committed at the end (lag 0)"] = lag == 0
            for step in run.before_stop:
                await step()
            return outputs, None
    except TimeoutError:
        return Outputs(), f"exceeded the deadline of {run.profile.deadline_s:.0f}s"
    except Exception as exc:
        log.exception("scenario %s failed", run.name)
        return Outputs(), f"{type(exc).__name__}: {exc}"


async def _wind_down(run: Run, *, failed: bool) -> None:
    if run.sampler is not None:
        await run.sampler.stop()
    if run.load is not None:
        run.load.cancel()
    if failed:  # nothing to finish gracefully: the figures are what is left
        for stack in run.stacks:
            if stack.alive():
                stack.kill()
    await _stop_all(run)


async def execute(run: Run, script: Script) -> dict[str, Any]:
    """Run ``script`` and measure, within the profile's deadline; the result row."""
    started = time.monotonic()
    outputs, error = await _scripted(run, script, started + run.profile.deadline_s)
    await _wind_down(run, failed=error is not None)
    stores = []
    for stack in run.stacks:
        try:
            stores.append(await asyncio.to_thread(stored, stack))
        except Exception as exc:  # noqa: BLE001 - reported in the row
            error = error or f"could not read ClickHouse: {exc}"
    result = figures(run, run.load.result if run.load else LoadResult(), outputs, stores)
    row = result.row
    row["seconds"] = round(time.monotonic() - started, 1)
    row["error"] = error
    row["passed"] = result.ok and error is None
    if not row["passed"]:
        # What the workers said went wrong, so that a failed run explains itself.
        row["worker_errors"] = [line for stack in run.stacks for line in _errors(stack)]
    return row


#: Error lines kept per worker in a failed scenario's row (the last ones).
_ERROR_LINES = 5


def _errors(stack: WorkerStack) -> list[str]:
    lines = [line for line in stack.logs().splitlines() if '"level":"error"' in line]
    return lines[-_ERROR_LINES:]
