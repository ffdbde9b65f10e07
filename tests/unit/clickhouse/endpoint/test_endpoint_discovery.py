"""The endpoint file by which ``worker db query`` finds a running worker."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from worker.clickhouse.endpoint.discovery import (
    EndpointInfo,
    endpoint_file,
    publish,
    running,
    withdraw,
)


def info(tmp_path: Path, **overrides: object) -> EndpointInfo:
    values: dict[str, object] = {
        "pid": os.getpid(),
        "host": "127.0.0.1",
        "port": 8124,
        "user": "analyst",
        "database": "worker",
        "chdb_path": str(tmp_path / "chdb"),
        "password": "generated",
    }
    values.update(overrides)
    return EndpointInfo(**values)  # type: ignore[arg-type]


def test_a_published_endpoint_of_a_live_process_is_found(tmp_path: Path) -> None:
    path = endpoint_file(tmp_path / "data")
    publish(path, info(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert running(path, tmp_path / "chdb") == info(tmp_path)
    assert running(path, tmp_path / "other-chdb") is None, "another chDB directory's worker"


def test_a_dead_workers_file_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = endpoint_file(tmp_path)
    publish(path, info(tmp_path, pid=gone.pid))
    assert running(path, tmp_path / "chdb") is None


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"pid": 1}', b"[]"])
def test_an_unreadable_file_is_ignored(tmp_path: Path, content: bytes) -> None:
    path = endpoint_file(tmp_path)
    path.write_bytes(content)
    assert running(path, tmp_path / "chdb") is None


def test_withdraw_removes_only_this_processs_file(tmp_path: Path) -> None:
    path = endpoint_file(tmp_path)
    publish(path, info(tmp_path, pid=os.getpid() + 1))
    withdraw(path, os.getpid())
    assert path.exists(), "a newer worker's file stays"
    publish(path, info(tmp_path))
    withdraw(path, os.getpid())
    assert not path.exists()
    withdraw(path, os.getpid())  # already gone: nothing to do


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8124"),
        ("0.0.0.0", "http://127.0.0.1:8124"),  # noqa: S104 - a wildcard, mapped to loopback
        ("::", "http://[::1]:8124"),
        ("::1", "http://[::1]:8124"),
    ],
)
def test_a_wildcard_listen_address_is_reached_on_loopback(
    tmp_path: Path, host: str, url: str
) -> None:
    assert info(tmp_path, host=host).url == url
