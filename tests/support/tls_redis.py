"""A dedicated redis-server that speaks only TLS and knows one ACL user, for the transport tests.

It never touches the shared Redis: its own port, its own directory, no persistence.
The default user is disabled, so every command needs the ACL user's password.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import listening, stop, wait_until_ready
from tests.support.tls import Pki, make_pki
from tests.support.worker import free_port

USER = "worker"
#: The ACL user may only touch keys under this prefix.
KEY_PREFIX = "tls-test:"


@dataclass(frozen=True, slots=True)
class TlsRedis:
    port: int
    password: str
    pki: Pki

    @property
    def url(self) -> str:
        return f"rediss://localhost:{self.port}/0"


@contextmanager
def tls_redis(directory: Path, password: str) -> Iterator[TlsRedis]:
    """Start redis-server with TLS only (``--port 0``) and stop it on exit."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (services/run.sh installs it)")
    pki = make_pki(directory / "pki", name="redis")
    port = free_port()
    args = [
        binary,
        "--port", "0",
        "--tls-port", str(port),
        "--bind", "127.0.0.1",
        "--tls-cert-file", str(pki.server_cert),
        "--tls-key-file", str(pki.server_key),
        "--tls-ca-cert-file", str(pki.ca_cert),
        "--tls-auth-clients", "no",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--logfile", str(directory / "redis.log"),
        "--user", "default", "off",
        "--user", USER, "on", f">{password}", f"~{KEY_PREFIX}*", "+@all", "-@dangerous",
    ]  # fmt: skip
    with (directory / "redis.out").open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    logs = [directory / "redis.out", directory / "redis.log"]
    try:
        wait_until_ready(
            "redis-server", process, lambda: listening(port), logs, timeout_s=30, poll_s=0.05
        )
        yield TlsRedis(port, password, pki)
    finally:
        stop(process, timeout_s=10)
