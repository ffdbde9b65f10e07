"""The helpers that start throwaway servers for tests report failures with their logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import log_tail, stop, wait_until_ready


def _spawn(code: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = _spawn("print('cannot bind'); raise SystemExit(3)", log)
    with pytest.raises(RuntimeError, match=r"(?s)server exited \(3\):.*cannot bind"):
        wait_until_ready("server", process, lambda: False, [log], timeout_s=30, poll_s=0.01)


def test_a_server_never_ready_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    process = _spawn("import time; print('still starting', flush=True); time.sleep(60)", log)
    try:
        with pytest.raises(RuntimeError, match=r"server was not ready within 0\.3 s"):
            wait_until_ready("server", process, lambda: False, [log], timeout_s=0.3)
    finally:
        stop(process, timeout_s=5)
    assert process.returncode is not None


def test_ready_returns_at_once(tmp_path: Path) -> None:
    process = _spawn("import time; time.sleep(60)", tmp_path / "server.log")
    try:
        wait_until_ready("server", process, lambda: True, [], timeout_s=5)
    finally:
        stop(process, timeout_s=5)


def test_the_tail_covers_every_log_that_exists(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("x" * 10 + "first")
    (tmp_path / "b.log").write_text("second")
    assert log_tail([tmp_path / "a.log", tmp_path / "missing.log", tmp_path / "b.log"], 5) == (
        "first\necond"
    )
    assert log_tail([tmp_path / "missing.log"]) == "(no log)"
