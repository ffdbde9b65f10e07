"""The endpoint as a service of the worker: started and stopped with the Faust app.

``build_app`` adds it as a dependency of the Faust app, so it starts with the app
(before the consumer joins its group: analysts can query while Kafka connects)
and stops after the consumer and the producer, in the worker's event loop. On
stop it withdraws the endpoint file, stops listening, cancels the queries still
running, gives their requests a moment to be answered, and closes its chDB
connection; the sink's connection is not touched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any

from aiohttp import web
from mode import Service

from worker.clickhouse.endpoint.auth import Authenticator
from worker.clickhouse.endpoint.backend import QueryBackend
from worker.clickhouse.endpoint.discovery import EndpointInfo, endpoint_file, publish, withdraw
from worker.clickhouse.endpoint.limits import QueryLimits
from worker.clickhouse.endpoint.server import EndpointConfig, QueryRunner, make_app
from worker.connections.tls import server_context
from worker.errors import ConfigurationError
from worker.settings import ClickHouseHttpSettings

log = logging.getLogger(__name__)

# How long answers to cancelled queries may take to leave at shutdown.
_SHUTDOWN_GRACE_S = 5.0


class ClickHouseEndpoint(Service):
    """Serves the read-only ClickHouse HTTP interface of the worker's embedded chDB."""

    def __init__(
        self,
        settings: ClickHouseHttpSettings,
        backend: QueryBackend,
        *,
        database: str,
        chdb_path: Path,
        data_dir: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._backend = backend
        self._database = database
        self._chdb_path = chdb_path
        self._file = endpoint_file(data_dir)
        configured = settings.password.get_secret_value() if settings.password else None
        self._generated = configured is None
        self.password = configured or secrets.token_urlsafe(24)
        self._runner: QueryRunner | None = None
        self._web: web.AppRunner | None = None
        self._socket: socket.socket | None = None
        # Built here, not on start: a bad certificate fails start-up before chDB is opened.
        self._tls = (
            server_context(prefix="CLICKHOUSE_HTTP_", cert=settings.tls_cert, key=settings.tls_key)
            if settings.tls_cert is not None
            else None
        )

    @property
    def port(self) -> int | None:
        """The port listened on, once bound (the real one when the setting is 0)."""
        return None if self._socket is None else int(self._socket.getsockname()[1])

    def bind(self) -> socket.socket:
        """Take the listening socket now, so that a port in use stops the worker at start-up.

        Operator action on failure: choose another ``CLICKHOUSE_HTTP_PORT`` (0 picks a
        free one) or set ``CLICKHOUSE_HTTP_ENABLED=false``.
        """
        if self._socket is not None:
            return self._socket
        host, port = self._settings.host, self._settings.port
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            self._socket = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise ConfigurationError(
                f"the ClickHouse HTTP endpoint cannot listen on {host}:{port}: {exc}. "
                "Operator action: set CLICKHOUSE_HTTP_PORT to a free port "
                "(or CLICKHOUSE_HTTP_ENABLED=false)",
                details={"host": host, "port": port},
            ) from exc
        return self._socket

    async def on_start(self) -> None:
        settings = self._settings
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._backend.start)
        limits = QueryLimits.from_settings(settings)
        self._runner = QueryRunner(
            self._backend,
            max_concurrent=settings.max_concurrent_queries,
            queue_timeout_s=settings.queue_timeout_s,
        )
        config = EndpointConfig(
            authenticator=Authenticator(
                settings.user, self.password, allow_anonymous=settings.allow_anonymous
            ),
            limits=limits,
            database=self._database,
            display_name=socket.gethostname(),
        )
        self._web = web.AppRunner(
            make_app(self._backend, self._runner, config),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_GRACE_S,
            # Long GET queries: the URL may carry up to max_query_size bytes, percent-encoded.
            max_line_size=max(8190, 3 * settings.max_query_size + 1024),
        )
        tls = self._tls
        await self._web.setup()
        listening = self.bind()
        await web.SockSite(self._web, listening, ssl_context=tls).start()
        port = int(listening.getsockname()[1])
        publish(
            self._file,
            EndpointInfo(
                pid=os.getpid(),
                host=settings.host,
                port=port,
                user=settings.user,
                database=self._database,
                chdb_path=str(self._chdb_path.resolve()),
                password=self.password if self._generated else None,
                tls=tls is not None,
            ),
        )
        log.info(
            "ClickHouse %s endpoint (read-only) on %s:%d, user %s%s",
            "HTTPS" if tls is not None else "HTTP",
            settings.host,
            port,
            settings.user,
            f", password in {self._file}" if self._generated else "",
        )

    async def on_stop(self) -> None:
        withdraw(self._file, os.getpid())
        if self._web is not None:
            for site in list(self._web.sites):
                await site.stop()
        if self._runner is not None:
            await self._runner.close(grace_s=self._settings.max_execution_time + _SHUTDOWN_GRACE_S)
        if self._web is not None:
            await self._web.cleanup()
        await asyncio.get_running_loop().run_in_executor(None, self._backend.close)
