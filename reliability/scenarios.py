"""The scenarios: what each breaks, while the load runs, and the evidence that it broke.

Every script starts its worker(s) and the load through :class:`~reliability.run.Run`,
waits ``fault_at_s`` into the load, injects its fault, records when the fault
ended (the moment recovery is measured from) and checks that the fault really
happened: the kill line in the log, the retries, the second worker's
partitions, the restored tables. The accounting that follows is the same for all.
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import orjson

from reliability.profiles import KillPoint, Profile
from reliability.run import ASSIGNED, Run, Script
from tests.support.kafka import group_positions

KILL_LINE = "killing the worker with SIGKILL"
#: Faust's recovery is done and the worker consumes its partitions.
READY = r"Recovery\]: Worker ready"


async def kill_point(run: Run, point: KillPoint) -> None:
    """SIGKILL at a point of delivery, ``kill_rounds`` times, each followed by a restart."""
    profile = run.profile
    stack = run.stack(
        WORKER_FAULT_POINT=point, WORKER_FAULT_AFTER_BATCHES=str(profile.kill_after_batches)
    )
    # The load lasts until the last kill: every round after the first needs a restart
    # (some 11 s to rejoin the group here) and then kill_after_batches more passes of the
    # point. With responses first, the insert points are passed once per insert, which
    # may hold several batches, so fewer times per second than batches are taken.
    await run.begin(stack, seconds=profile.seconds + (profile.kill_rounds - 1) * 30)
    codes = []
    for round_ in range(profile.kill_rounds):
        codes.append(await run.wait_exit(stack))
        if round_ == profile.kill_rounds - 1:
            # The last restart runs without the fault and drains everything.
            del stack.extra_env["WORKER_FAULT_POINT"]
        # Restarted at once, as a supervisor would: recovery includes the start-up.
        run.fault_ended()
        await run.start(stack)
    logs = stack.logs()
    kills = logs.count(f"reached {point}, {KILL_LINE}")
    run.checks[f"killed by SIGKILL at {point} {profile.kill_rounds}x"] = (
        codes == [-signal.SIGKILL] * profile.kill_rounds and kills == profile.kill_rounds
    )

    async def skipped() -> None:
        rows = await run.metric(stack, "worker_clickhouse_deduplicated_rows_total")
        run.extra["rows_found_stored"] = int(rows)
        if point in ("after_insert", "after_ack"):
            # The killed batch's rows were stored (responses go out first, so at
            # after_publish they are not yet): consumed again, they must be found so.
            run.checks["the redelivered rows were found stored"] = rows > 0

    run.before_stop.append(skipped)


async def sigterm_mid_batch(run: Run) -> None:
    """SIGTERM while a batch is inside a (slowed) ClickHouse insert; graceful exit, restart."""
    # Each insert takes 0.5 s, so a batch is in flight whenever the signal lands.
    stack = run.stack(WORKER_FAULT_CLICKHOUSE_INSERT_DELAY_S="0.5")
    await run.begin(stack)
    codes = []
    for _ in range(run.profile.sigterm_rounds):
        await run.until_fault()
        assert stack.process is not None
        stack.process.send_signal(signal.SIGTERM)
        codes.append(await run.wait_exit(stack, timeout_s=60))
        run.fault_ended()
        await run.start(stack)
    run.checks["stopped gracefully on SIGTERM (exit 0)"] = codes == [0] * len(codes)


async def broker_killed(run: Run) -> None:
    """SIGKILL the broker under load, start it again on its data after ``broker_down_s``."""
    stack = run.stack()
    await run.begin(stack, seconds=run.profile.seconds + run.profile.broker_down_s)
    await run.until_fault()
    await asyncio.to_thread(run.services.kill_broker)
    await asyncio.sleep(run.profile.broker_down_s)
    await run.services.start_broker()
    run.fault_ended()
    run.checks["the worker survived the broker's restart"] = stack.alive()


async def clickhouse_down(run: Run, outage_s: float) -> None:
    """Every ClickHouse call fails (unreachable) for ``outage_s`` while requests keep coming."""
    flag = run.root / "clickhouse-down"
    stack = run.stack(
        WORKER_FAULT_CLICKHOUSE_DOWN_FILE=str(flag), CLICKHOUSE_INSERT_RETRY_MAX_S="1"
    )
    await run.begin(stack, seconds=run.profile.fault_at_s + outage_s + run.profile.seconds / 2)
    await run.until_fault()
    flag.write_text("")
    await asyncio.sleep(outage_s)
    flag.unlink()
    run.fault_ended()
    logs = stack.logs()
    run.checks["inserts failed during the outage"] = "failed (attempt" in logs
    run.checks["the worker kept running"] = stack.alive()


async def redis_down(run: Run, policy: str) -> None:
    """Redis unreachable (SIGSTOP) for ``redis_down_s`` under ``LIMITS_ON_REDIS_UNAVAILABLE``.

    The documented policy: credentials and replay outcomes need Redis whatever the
    rate-limit policy, so the batch waits and retries (well within the retry
    budget here), then everything is answered once Redis is back; nothing is
    dead-lettered and nothing is lost.
    """
    stack = run.stack(LIMITS_ON_REDIS_UNAVAILABLE=policy, REDIS_SOCKET_TIMEOUT_S="1")
    down_s = run.profile.redis_down_s
    await run.begin(stack, seconds=run.profile.fault_at_s + down_s + run.profile.seconds / 2)
    await run.until_fault()
    run.services.pause_redis()
    try:
        await asyncio.sleep(down_s)
    finally:
        run.services.resume_redis()
    run.fault_ended()
    retried = re.findall(r"(\w+) failed \[(\w+)\], retrying", stack.logs())
    run.checks["batches retried while Redis was unreachable"] = bool(retried)
    run.notes.append(
        "retried: " + ", ".join(sorted({f"{step} [{code}]" for step, code in retried}))
    )
    run.checks["the worker kept running"] = stack.alive()


async def rebalance(run: Run) -> None:
    """A second worker joins the group under load and leaves it (SIGTERM), ``rebalance_rounds``x.

    Each worker has its own chDB (one process per directory), as two hosts would;
    the rows of both are counted together, so a request stored by both is a
    duplicate even with FINAL.
    """
    first = run.stack()
    # A worker takes some 10 s to start here: the load lasts until the last leave.
    rounds = run.profile.rebalance_rounds
    await run.begin(first, seconds=run.profile.seconds + rounds * (15 + 2 * run.profile.fault_at_s))
    peer = run.stack()
    codes = []
    for _ in range(run.profile.rebalance_rounds):
        await run.until_fault()
        await run.start(peer)  # joins: the group rebalances under load
        await asyncio.to_thread(peer.wait_for_log, READY, timeout_s=120)
        await run.until_fault()
        assert peer.process is not None
        peer.process.send_signal(signal.SIGTERM)  # leaves: its partitions move back
        codes.append(await run.wait_exit(peer, timeout_s=60))
        run.fault_ended()
    run.checks["the second worker got partitions"] = bool(re.search(ASSIGNED, peer.logs()))
    run.checks["the second worker left gracefully (exit 0)"] = codes == [0] * len(codes)


async def state_wiped(run: Run) -> None:
    """Stop the worker, delete its local state directory, start it: tables come from changelogs."""
    stack = run.stack()
    await run.begin(stack)
    await run.until_fault()
    code = await asyncio.to_thread(stack.stop, 60)
    topics = stack.topics
    at_stop = await asyncio.to_thread(
        group_positions, stack.bootstrap, stack.run_id, topics.requests, topics.responses
    )
    run.extra["uncommitted_at_stop"] = at_stop.produced - at_stop.committed
    data = stack.root / "data"
    run.checks["the cache had state on disk before the wipe"] = any(data.rglob("*.sst")) or any(
        data.rglob("CURRENT")
    )
    run.wipe(data)
    run.fault_ended()
    await run.start(stack)
    await asyncio.to_thread(stack.wait_for_log, READY, timeout_s=60)
    run.checks["stopped gracefully before the wipe (exit 0)"] = code == 0
    restored = _restored_records(stack.root / f"worker-{stack.starts}.log")
    run.extra["restored_records"] = restored
    run.checks["the cache tables were restored from their changelogs"] = restored > 0


_TABLE_ROW = re.compile(r"^\| (\S+)\s*\| (\d+)\s*\| (-?\d+)\s*\|$")


def _offsets_table(message: str) -> dict[tuple[str, int], int]:
    """Faust's recovery table (topic | partition | offset), the ditto mark resolved."""
    table: dict[tuple[str, int], int] = {}
    topic = ""
    for line in message.splitlines():
        match = _TABLE_ROW.match(line.strip())
        if match:
            topic = topic if match[1] == "\u3003" else match[1]
            table[(topic, int(match[2]))] = int(match[3])
    return table


def _restored_records(log_file: Path) -> int:
    """Changelog records Faust's recovery read at the start of one run of the worker."""
    highwater: dict[tuple[str, int], int] = {}
    starts: dict[tuple[str, int], int] = {}
    for line in log_file.read_text(errors="replace").splitlines():
        if "Highwater for active" not in line and "active offsets at start" not in line:
            continue
        message = str(orjson.loads(line).get("message", ""))
        target = highwater if "Highwater" in message else starts
        target.update(_offsets_table(message))
    return sum(
        max(0, end - starts.get(tp, -1)) for tp, end in highwater.items() if "changelog" in tp[0]
    )


async def poison(run: Run) -> None:
    """Every kind of poison, one message in three, under load; no other fault."""
    stack = run.stack()
    await run.begin(stack, full_poison=True)


def scenarios(profile: Profile) -> Iterator[tuple[str, Script]]:
    """The profile's scenarios, in the order they run: (name, script)."""
    for point in profile.kill_points:
        yield f"kill-{point}", partial(kill_point, point=point)
    yield "sigterm-mid-batch", sigterm_mid_batch
    yield "broker-sigkill", broker_killed
    for outage in profile.clickhouse_outages_s:
        yield f"clickhouse-down-{outage:g}s", partial(clickhouse_down, outage_s=outage)
    for policy in profile.redis_policies:
        yield f"redis-down-{profile.redis_down_s:g}s-{policy}", partial(redis_down, policy=policy)
    yield "rebalance-join-leave", rebalance
    yield "state-dir-wiped", state_wiped
    yield "poison", poison
