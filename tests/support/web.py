"""Asking a worker under test over HTTP: its metrics and health endpoints."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

T = TypeVar("T")


def get(port: int, path: str, timeout_s: float = 5.0) -> tuple[int, bytes] | None:
    """(status, body) of ``GET http://127.0.0.1:port/path``, or None if nothing answers."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, OSError):
        return None


def readiness(port: int) -> tuple[int, dict[str, Any]] | None:
    """(status, report) of ``/health/ready``, or None if nothing answers."""
    answer = get(port, "/health/ready")
    if answer is None:
        return None
    return answer[0], orjson.loads(answer[1])


def metrics_text(port: int) -> str:
    answer = get(port, "/metrics")
    assert answer is not None, "the worker does not answer on its web port"
    status, body = answer
    assert status == 200
    return body.decode()


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout_s: float,
    alive: Callable[[], bool] = lambda: True,
    interval_s: float = 0.1,
    what: str = "the condition",
) -> T:
    """Call ``probe`` until it returns something other than None (or None-like False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert alive(), f"the worker exited while waiting for {what}"
        found = probe()
        if found is not None and found is not False:
            return found
        time.sleep(interval_s)
    raise AssertionError(f"{what} did not happen within {timeout_s}s")
