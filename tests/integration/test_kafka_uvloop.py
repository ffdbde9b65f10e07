"""aiokafka on uvloop against the real broker: a write to a closed connection is a connection error.

The worker runs on uvloop, whose closed transports raise ``RuntimeError`` on a
write where the standard library's ignore it; aiokafka catches only
``OSError`` there (aio-libs/aiokafka#1038). ``worker.connections.kafka_uvloop``
turns that write into ``KafkaConnectionError``, which aiokafka retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import uvloop
from aiokafka import conn as aiokafka_conn
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest

from tests.conftest import Services
from worker.connections import kafka_uvloop

pytestmark = pytest.mark.integration

T = TypeVar("T")


def on_uvloop(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run ``scenario`` on a fresh uvloop loop, as ``worker run`` does."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(scenario())


async def connect(services: Services) -> Any:
    host, port = services.bootstrap.split(":")
    return await aiokafka_conn.create_conn(host, int(port))


async def closed_under(connection: Any) -> None:
    """The broker closed ``connection`` a moment ago: uvloop has closed the transport,
    aiokafka's reader task has not noticed yet (its writer is still set)."""
    connection._writer.transport.close()
    await asyncio.sleep(0)
    assert connection._writer is not None


def test_uvloop_raises_on_a_write_to_a_closed_connection_which_aiokafka_does_not_catch(
    services: Services,
) -> None:
    kafka_uvloop.install()
    unguarded = aiokafka_conn.AIOKafkaConnection.send.__wrapped__

    async def scenario() -> None:
        connection = await connect(services)
        await closed_under(connection)
        with pytest.raises(RuntimeError, match="handler is closed"):
            unguarded(connection, MetadataRequest([]))
        connection.close()

    on_uvloop(scenario)


def test_a_write_to_a_closed_connection_closes_it_and_raises_a_connection_error(
    services: Services,
) -> None:
    kafka_uvloop.install()
    kafka_uvloop.install()  # idempotent: guarded once

    async def scenario() -> None:
        connection = await connect(services)
        await closed_under(connection)
        with pytest.raises(KafkaConnectionError, match="broken"):
            connection.send(MetadataRequest([]))
        assert connection._writer is None, "closed, so the client makes a new one"

    on_uvloop(scenario)


def test_the_metadata_task_survives_a_closed_connection_and_reconnects(
    services: Services,
) -> None:
    kafka_uvloop.install()

    async def scenario() -> tuple[bool, bool, bool]:
        client = AIOKafkaClient(bootstrap_servers=services.bootstrap)
        await client.bootstrap()
        try:
            [node] = [broker.nodeId for broker in client.cluster.brokers()]
            assert await client.ready(node)
            for connection in list(client._conns.values()):
                await closed_under(connection)
                # Its reader still holds bytes the broker sent before it died, so the
                # client takes the connection for open (StreamReader.at_eof() is False)
                # until the connection is closed.
                connection.connected = lambda c=connection: c._reader is not None
            # The metadata task's step: unguarded, the RuntimeError ended the task here.
            first = await client._metadata_update(client.cluster, [])
            async with asyncio.timeout(30):
                again = await client.force_metadata_update()
            return first, again, client._sync_task.done()
        finally:
            await client.close()

    first, again, ended = on_uvloop(scenario)
    # The refresh over the closed connections failed, as one with the broker away
    # does; the task lived on and the next refresh reconnected.
    assert first is False
    assert again is True
    assert not ended
