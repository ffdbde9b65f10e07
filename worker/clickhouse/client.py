"""One place that knows how to open a ClickHouse client: embedded chDB or a server URL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import DatabaseError as ClickHouseDatabaseError
from clickhouse_connect.driver.exceptions import OperationalError

from worker.clickhouse.endpoint.discovery import EndpointInfo, endpoint_file, running
from worker.errors import ConfigurationError, DatabaseError
from worker.settings import ClickHouseSettings, Settings

log = logging.getLogger(__name__)
_REQUIRED_PASSWORD, _AUTHENTICATION_FAILED = 194, 516


def server_options(settings: ClickHouseSettings) -> dict[str, Any]:
    """The clickhouse-connect options for a server URL: timeouts and TLS.

    TLS is on for ``https://`` URLs and only for them, with the server certificate verified
    against the system's CAs, or ``CLICKHOUSE_TLS_CA_CERT`` when set; a client
    certificate is presented when ``CLICKHOUSE_TLS_CLIENT_CERT`` is set (mutual
    TLS). TLS options on a plain ``http://`` URL are a configuration error,
    never silently ignored.
    """
    scheme = urlsplit(settings.url.get_secret_value()).scheme if settings.url else ""
    options: dict[str, Any] = {
        # From the URL's scheme, always: clickhouse-connect ignores a DSN's scheme and
        # guesses TLS from the port, so https://host:9000 would go out unencrypted.
        "interface": scheme,
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
    if scheme not in ("http", "https"):
        raise ConfigurationError("CLICKHOUSE_URL must be an http:// or https:// URL")
    if requested:
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


def connect_reader(settings: Settings) -> tuple[Any, str]:
    """A client for read-only queries, and where it reads from.

    In embedded mode a running worker holds chDB: its endpoint file
    (``<WORKER_DATA_DIR>/clickhouse-http.json``, see ``endpoint/discovery.py``)
    says where it serves, and the client goes there. With no live worker on this
    chDB directory, or when its endpoint does not answer (it is stopping), chDB is
    opened directly.
    """
    if settings.clickhouse.embedded:
        info = running(endpoint_file(settings.worker.data_dir), settings.clickhouse.path)
        if info is not None:
            client = _endpoint_client(settings, info)
            if client is not None:
                return client, f"{info.url} (the running worker, pid {info.pid})"
    client = connect(settings.clickhouse)
    client.database = settings.clickhouse.database
    return client, settings.clickhouse.describe()


def _endpoint_client(settings: Settings, info: EndpointInfo) -> Any:
    configured = settings.clickhouse_http.password
    password = configured.get_secret_value() if configured is not None else info.password
    try:
        ca_cert = settings.clickhouse_http.tls_ca_cert
        return clickhouse_connect.get_client(
            host=info.connect_host,
            port=info.port,
            username=info.user,
            password=password or "",
            database=info.database,
            # Verified like any server: the system CAs, or the endpoint's own CA.
            secure=info.tls,
            ca_cert=str(ca_cert) if info.tls and ca_cert is not None else None,
        )
    except OperationalError as exc:
        log.info("the worker's endpoint at %s does not answer (%s); opening chDB", info.url, exc)
        return None
    except ClickHouseDatabaseError as exc:
        if exc.code in (_AUTHENTICATION_FAILED, _REQUIRED_PASSWORD):
            raise ConfigurationError(
                f"the running worker's ClickHouse HTTP endpoint ({info.url}) refused the "
                "credentials. Operator action: set CLICKHOUSE_HTTP_PASSWORD to the worker's",
                details={"url": info.url, "user": info.user},
            ) from exc
        raise
