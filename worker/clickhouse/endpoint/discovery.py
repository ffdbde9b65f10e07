"""How tools on the same machine find a running worker's endpoint: a file in the data dir.

While the endpoint serves, ``<WORKER_DATA_DIR>/clickhouse-http.json`` (mode 0600)
names the worker's pid, the chDB directory it holds, where the endpoint listens
(the real port, also when ``CLICKHOUSE_HTTP_PORT=0`` picked one) and, when the
password was generated for this run, the password. The worker removes the file
when it stops; a file left by a killed worker names a pid that is gone, and is
ignored. ``worker db query`` reads it to decide between the endpoint and opening
chDB itself.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

FILE_NAME = "clickhouse-http.json"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapped away


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """A running endpoint, as its worker published it."""

    pid: int
    host: str
    port: int
    user: str
    database: str
    chdb_path: str
    # Only a password generated for this run is written here, never a configured one.
    password: str | None = None
    #: Served over HTTPS (CLICKHOUSE_HTTP_TLS_CERT).
    tls: bool = False

    @property
    def connect_host(self) -> str:
        """Where a local client connects (a wildcard listen address means loopback)."""
        return _WILDCARDS.get(self.host, self.host)

    @property
    def url(self) -> str:
        host = f"[{self.connect_host}]" if ":" in self.connect_host else self.connect_host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def endpoint_file(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def publish(path: Path, info: EndpointInfo) -> None:
    """Write the file atomically, readable by its owner only (it may hold a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(orjson.dumps(asdict(info), option=orjson.OPT_INDENT_2))
    temporary.replace(path)


def withdraw(path: Path, pid: int) -> None:
    """Remove the file if it is this process's (a newer worker may have replaced it)."""
    info = _read(path)
    if info is not None and info.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def running(path: Path, chdb_path: Path) -> EndpointInfo | None:
    """The endpoint of a live worker holding ``chdb_path``, or None."""
    info = _read(path)
    if info is None or not _alive(info.pid):
        return None
    if os.path.realpath(info.chdb_path) != os.path.realpath(chdb_path):
        return None
    return info


def _read(path: Path) -> EndpointInfo | None:
    try:
        return EndpointInfo(**orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True
