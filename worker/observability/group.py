"""What the Kafka client's group membership is doing, for the log line of a stuck worker.

When commits stop (a stalled partition, a graceful stop past its deadline),
the cause is often inside the client: no known group coordinator, a lookup or
a commit waiting on a lock, a background task that ended. aiokafka keeps that
state in private attributes; :func:`group_state` reads it without touching
it, defensively (an attribute missing after an upgrade reads as ``None``), and
says where each of its background tasks is waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _where(task: Any) -> str | None:
    """Where ``task`` waits (its chain of awaits), how it ended, or None if there is no task."""
    if not isinstance(task, asyncio.Task):
        return None
    if task.done():
        if task.cancelled():
            return "cancelled"
        error = task.exception()
        return f"ended: {error!r}" if error is not None else "ended"
    # Task.get_stack() shows a suspended task's outermost frame only: follow the awaits.
    names: list[str] = []
    place = ""
    awaited: Any = task.get_coro()
    while awaited is not None and getattr(awaited, "cr_frame", None) is not None:
        frame = awaited.cr_frame
        names.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        place = "/".join(Path(frame.f_code.co_filename).parts[-2:])
        awaited = getattr(awaited, "cr_await", None)
    if not names:
        return "running"
    return f"waiting in {' > '.join(names)} (innermost in {place})"


def _locked(lock: Any) -> bool | None:
    return lock.locked() if isinstance(lock, asyncio.Lock) else None


def group_state(consumer: Any) -> dict[str, Any]:
    """The group coordinator's state in an aiokafka consumer (``AIOKafkaConsumer``).

    Keys: ``coordinator_id`` (None: unknown, being looked up), ``generation``,
    ``member_id``, whether a coordinator lookup or a commit holds its lock, and
    where the coordination, heartbeat and metadata tasks are.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    client = getattr(consumer, "_client", None)
    if coordinator is None:
        return {"coordinator": "none (the consumer has not started)"}
    return {
        "coordinator_id": getattr(coordinator, "coordinator_id", None),
        "generation": getattr(coordinator, "generation", None),
        "member_id": getattr(coordinator, "member_id", None),
        "lookup_locked": _locked(getattr(coordinator, "_coordinator_lookup_lock", None)),
        "commit_locked": _locked(getattr(coordinator, "_commit_lock", None)),
        "coordination_task": _where(getattr(coordinator, "_coordination_task", None)),
        "heartbeat_task": _where(getattr(coordinator, "_heartbeat_task", None)),
        "metadata_task": _where(getattr(client, "_sync_task", None)),
    }


def as_text(state: dict[str, Any]) -> str:
    """``state`` as ``name=value`` pairs, for a log line read as text (extra fields unseen)."""
    return ", ".join(f"{name}={value}" for name, value in state.items())


def described(*describers: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """What ``describers`` return, merged; one that fails says so instead of raising.

    A description goes into the log line of a stall or of a stop past its
    deadline: reading private client state must never keep that line, or what
    follows it (the exit for the supervisor), from happening.
    """
    state: dict[str, Any] = {}
    for describe in describers:
        try:
            state.update(describe())
        except Exception as exc:  # noqa: BLE001 - a description is best effort
            state["described"] = f"failed: {exc!r}"
    return state
