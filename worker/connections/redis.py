"""Every Redis client of the worker, built from ``REDIS_*``: URL, ACL user, TLS."""

from __future__ import annotations

import ssl
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)

from worker.settings import RedisSettings


class _HiredisPacking(AbstractConnection):
    """Commands packed by hiredis's C packer, as redis-py's synchronous client packs them.

    redis-py's asyncio connections pack each command in Python, an encode and a
    few joins per argument, even with hiredis installed. The idempotency store's
    script call carries a key and a value per request: packing took 1.01 us per
    request there, and 0.17 us in hiredis. hiredis formats str, bytes, int and
    float as redis-py does; anything else (memoryviews, or a type Redis refuses)
    goes to redis-py's own packer, which converts or refuses it as it always did.
    (redis-py's ``HiredisRespSerializer``, which its synchronous client uses,
    first converts every argument in Python, and refuses a bad type with
    hiredis's message instead of redis-py's.)
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        if isinstance(head, str):
            args = (*head.encode().split(), *args[1:])
        elif b" " in head:
            args = (*head.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return super().pack_command(*args)


class _PackedConnection(_HiredisPacking, Connection):
    """A TCP connection (``redis://``) whose commands hiredis packs."""


class _PackedSSLConnection(_HiredisPacking, SSLConnection):
    """A TLS connection (``rediss://``) whose commands hiredis packs."""


class _PackedUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    """A Unix socket connection (``unix://``) whose commands hiredis packs."""


#: The packing subclass of each connection class a URL can choose.
_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _PackedConnection,
    SSLConnection: _PackedSSLConnection,
    UnixDomainSocketConnection: _PackedUnixConnection,
}


def client_options(settings: RedisSettings, *, timeout_s: float | None = None) -> dict[str, Any]:
    """The keyword arguments ``redis.asyncio.Redis.from_url`` gets besides the URL.

    ``timeout_s`` replaces ``REDIS_SOCKET_TIMEOUT_S`` (health checks bring their own).
    """
    timeout = settings.socket_timeout_s if timeout_s is None else timeout_s
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if settings.username is not None:
        options["username"] = settings.username
    if settings.password is not None:
        options["password"] = settings.password.get_secret_value()
    if settings.tls:
        options.update(
            ssl_cert_reqs="required" if settings.tls_verify else "none",
            ssl_check_hostname=settings.tls_verify and settings.tls_check_hostname,
            ssl_ca_certs=str(settings.tls_ca_cert) if settings.tls_ca_cert else None,
            ssl_certfile=str(settings.tls_client_cert) if settings.tls_client_cert else None,
            ssl_keyfile=str(settings.tls_client_key) if settings.tls_client_key else None,
            ssl_min_version=ssl.TLSVersion.TLSv1_2,
        )
    return options


def redis_client(settings: RedisSettings, *, timeout_s: float | None = None) -> aioredis.Redis:
    """A Redis client; it connects on first use, over TLS for a ``rediss://`` URL."""
    client = aioredis.Redis.from_url(
        settings.url.get_secret_value(), **client_options(settings, timeout_s=timeout_s)
    )
    # The URL's scheme chose the class; nothing is connected yet.
    pool = client.connection_pool
    pool.connection_class = _PACKED.get(pool.connection_class, pool.connection_class)
    return client
