"""Helpers for the throwaway servers some tests start: wait until ready, show the log, stop."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def log_tail(logs: Sequence[Path], chars: int = 4000) -> str:
    """The last ``chars`` characters of each log that exists."""
    tails = [path.read_text(errors="replace")[-chars:] for path in logs if path.exists()]
    return "\n".join(tails) if tails else "(no log)"


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_until_ready(
    name: str,
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    logs: Sequence[Path],
    *,
    timeout_s: float,
    poll_s: float = 0.1,
) -> None:
    """Return once ``ready()`` holds; raise with the logs' tails if ``name`` exits or is late."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}):\n{log_tail(logs)}")
        if ready():
            return
        time.sleep(poll_s)
    raise RuntimeError(f"{name} was not ready within {timeout_s:g} s:\n{log_tail(logs)}")


def stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Terminate ``process``, killing it if it has not exited within ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
