"""Where a worker's CPU goes: py-spy attached to it while it drains the backlog.

py-spy samples the process from outside (100 Hz, without pausing it), so the
worker runs unmodified; it is attached when the first response appears and
detached when the last one did, so start-up and shutdown stay out of the
profile. Samples of threads that wait (epoll, futex) are dropped by py-spy:
the shares below are shares of the time some thread of the worker was on CPU.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, raw_path: Path) -> subprocess.Popen[bytes]:
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: make bench installs it (.[bench])")
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(raw_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(spy: subprocess.Popen[bytes]) -> None:
    """Detach; py-spy writes its output on SIGINT."""
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()


# Where a sample's time is charged, by py-spy's shortened file paths. Scanning a
# stack from its root, the innermost specific stage wins: the producer's work
# inside a publish counts as the producer's, pydantic inside validation as
# validation (libraries without a stage count for the stage that called them).
# The generic stages (glue, Faust, aiokafka's connections) only take samples no
# specific stage claims.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aiokafka producer (send, batches, compression)", ("aiokafka/producer/", "aiokafka/codec")),
    ("aiokafka consumer (fetch, decode records)", ("aiokafka/consumer/",)),
    ("ClickHouse insert (clickhouse-connect, chDB)", ("clickhouse_connect/", "chdb/")),
    ("Redis client", ("redis/",)),
    ("decode", ("worker/flow/decode",)),
    ("validate", ("worker/flow/validate", "worker/contracts/")),
    ("authenticate (signatures, tokens)", ("worker/flow/authenticate", "worker/auth/")),
    ("authorize", ("worker/flow/authorize",)),
    ("replay check and remember", ("worker/flow/idempotency", "worker/idempotency/")),
    ("rate limit", ("worker/flow/ratelimit", "worker/ratelimit/")),
    ("cache (keys, lookups, stores)", ("worker/flow/cache", "worker/cache/", "worker/state/")),
    ("reference data", ("worker/reference/",)),
    ("process (operations)", ("worker/flow/process", "worker/operations/")),
    ("respond (envelopes, rows, dead letters)", ("worker/flow/respond", "worker/flow/output")),
    ("persist (sink, executor hand-off)", ("worker/sinks/",)),
    ("publish (hand messages to the producer)", ("worker/publish/",)),
)
GENERIC: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("batch loop, to_record, pipeline glue", ("worker/",)),
    ("Faust / mode machinery (fetch loop, conductor, streams)", ("faust/", "mode/")),
    ("aiokafka connections and protocol", ("aiokafka/",)),
)
EVENT_LOOP = "event loop (asyncio scheduling, select), other"


_LOOP_ENTRIES = frozenset({"BaseEventLoop._run_once", "Worker.execute_from_commandline"})


def _stage(frames: list[tuple[str, str]]) -> str:
    # Frames down to the event loop's _run_once (the worker's and Faust's start-up
    # call chain) run everything; only what the loop is running says where time goes.
    # uvloop runs callbacks from C: there, the chain ends at mode's worker entry point.
    loop = [i for i, (func, _) in enumerate(frames) if func in _LOOP_ENTRIES]
    files = [file for _, file in frames[loop[-1] + 1 if loop else 0 :]]
    specific = generic = None
    for file in files:
        for stage, prefixes in STAGES:
            if file.startswith(prefixes):
                specific = stage
                break
        else:
            for stage, prefixes in GENERIC:
                if file.startswith(prefixes):
                    generic = stage
                    break
    return specific or generic or EVENT_LOOP


def _area(file: str) -> str:
    """A frame's file as the part of the system it belongs to: a package or a worker module."""
    if file.startswith("worker/"):
        return file.removesuffix(".py")
    if file == "<string>":
        return "generated __init__ (dataclasses)"
    return file.split("/", 1)[0].removesuffix(".py")


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    if not match:
        return frame, ""
    return match["func"], match["file"]


def summarize(raw_path: Path, top: int = 25) -> dict[str, Any]:
    """Shares of on-CPU samples: by thread, by stage, by area and function (self and total)."""
    threads: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    samples = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        threads[re.sub(r"\(0x[0-9a-fA-F]+\)", "", thread).strip()] += count
        code = [f for f in frames if not f.startswith(("thread", "process"))]
        if not code:
            continue
        split = [(fn, _short(fl)) for fn, fl in map(_split, code)]
        stages[_stage(split)] += count
        func, file = split[-1]
        areas[_area(file)] += count
        self_time[f"{func} ({_short(file)})"] += count
        for name in {f"{fn} ({_short(fl)})" for fn, fl in split}:
            total_time[name] += count

    def share(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
        return [
            {"name": name, "samples": c, "share": round(c / samples, 4)}
            for name, c in counter.most_common(limit)
        ]

    return {
        "samples": samples,
        "threads": share(threads, 10),
        "by_stage": share(stages, len(STAGES) + len(GENERIC) + 1),
        "self_by_area": share(areas, 20),
        "self_by_function": share(self_time, top),
        "total_by_function": share(total_time, top * 2),
    }


def _short(file: str) -> str:
    # py-spy already shortens paths to the package (``faust/streams.py``); the
    # worker of an exported revision keeps its full path.
    if "/worker/" in file:
        return "worker/" + file.split("/worker/", 1)[1]
    return file
