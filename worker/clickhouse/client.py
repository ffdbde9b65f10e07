"""One place that knows how to open a ClickHouse client: embedded chDB or a server URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect

from worker.errors import ConfigurationError, DatabaseError
from worker.settings import ClickHouseSettings


def server_options(settings: ClickHouseSettings) -> dict[str, Any]:
    """The clickhouse-connect options for a server URL: timeouts and TLS.

    TLS is on for ``https://`` URLs, with the server certificate verified
    against the system's CAs, or ``CLICKHOUSE_TLS_CA_CERT`` when set; a client
    certificate is presented when ``CLICKHOUSE_TLS_CLIENT_CERT`` is set (mutual
    TLS). TLS options on a plain ``http://`` URL are a configuration error,
    never silently ignored.
    """
    options: dict[str, Any] = {
        "connect_timeout": settings.connect_timeout_s,
        "send_receive_timeout": settings.query_timeout_s,
        # The sink retries itself, with the same deduplication token.
        "query_retries": 0,
    }
    tls = {
        # option of clickhouse-connect: (setting that asks for it, value)
        "ca_cert": ("TLS_CA_CERT", settings.tls_ca_cert),
        "client_cert": ("TLS_CLIENT_CERT", settings.tls_client_cert),
        "client_cert_key": ("TLS_CLIENT_KEY", settings.tls_client_key),
        "server_host_name": ("TLS_SERVER_HOST_NAME", settings.tls_server_host_name),
        "verify": ("TLS_VERIFY", False if not settings.tls_verify else None),
    }
    requested = {option: value for option, (_, value) in tls.items() if value is not None}
    if settings.tls_client_key and not settings.tls_client_cert:
        raise ConfigurationError("CLICKHOUSE_TLS_CLIENT_KEY needs CLICKHOUSE_TLS_CLIENT_CERT")
    if requested:
        scheme = urlsplit(settings.url.get_secret_value()).scheme if settings.url else ""
        if scheme != "https":
            names = ", ".join(sorted(f"CLICKHOUSE_{tls[option][0]}" for option in requested))
            raise ConfigurationError(f"{names} need an https:// CLICKHOUSE_URL")
        options.update(
            {name: str(v) if isinstance(v, Path) else v for name, v in requested.items()}
        )
    return options


def connect(settings: ClickHouseSettings) -> Any:
    """A clickhouse-connect ``Client``; the same API whichever backend is configured.

    Embedded mode opens chDB on ``settings.path``: chDB locks that directory, so
    only one process at a time may hold it (see docs/architecture.md).
    """
    try:
        if settings.url is None:
            settings.path.mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(dsn=f"chdb://{settings.path.resolve()}")
        return clickhouse_connect.get_client(
            dsn=settings.url.get_secret_value(), **server_options(settings)
        )
    except ConfigurationError:
        raise
    except ValueError as exc:
        raise ConfigurationError(f"CLICKHOUSE_URL is not usable: {exc}") from exc
    except Exception as exc:
        raise DatabaseError(
            f"cannot open ClickHouse at {settings.describe()}: {exc}",
            details={"target": settings.describe()},
        ) from exc
