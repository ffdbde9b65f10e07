"""Every Redis client of the worker, built from ``REDIS_*``: URL, ACL user, TLS."""

from __future__ import annotations

import ssl
from typing import Any

import redis.asyncio as aioredis

from worker.settings import RedisSettings


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
    return aioredis.Redis.from_url(
        settings.url.get_secret_value(), **client_options(settings, timeout_s=timeout_s)
    )
