"""Commands packed by hiredis on the worker's Redis connections, as redis-py packs them."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from worker.connections import redis as redis_connections
from worker.connections.redis import redis_client
from worker.settings import RedisSettings

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "outcome:acme:r-1", b'{"status":"ok"}', "EX", 86400),
    (b"MGET", "a", "b", "c"),
    ("EVALSHA", "0" * 40, 2, "k1", "k2", 12.5, 1e20, 1 / 3, -7, 0),
    ("CONFIG GET", "maxmemory"),  # a command of two words is sent as two arguments
    (b"CLIENT SETNAME", "worker-1"),
    ("SET", "naïve-ключ", "välue"),  # non-ASCII str: UTF-8, as redis-py encodes it
    ("SET", "k", memoryview(b"held elsewhere")),  # not hiredis's: redis-py's packer
    ("SET", "big", b"x" * 200_000),  # past redis-py's buffer cutoff
]


async def connection_for(url: str) -> Any:
    client = redis_client(RedisSettings(url=SecretStr(url)))
    try:
        return client.connection_pool.make_connection()
    finally:
        await client.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6380/0", SSLConnection),
        ("unix:///run/redis.sock", UnixDomainSocketConnection),
    ],
)
async def test_every_scheme_keeps_its_connection_kind_with_hiredis_packing(
    url: str, base: type[Any]
) -> None:
    connection = await connection_for(url)
    assert isinstance(connection, base)
    assert type(connection) is not base
    packed = b"".join(connection.pack_command("PING"))
    assert packed == b"*1\r\n$4\r\nPING\r\n"


@pytest.mark.asyncio
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
async def test_a_command_is_packed_to_the_same_bytes_as_redis_py_packs_it(
    command: tuple[Any, ...],
) -> None:
    ours = await connection_for("redis://127.0.0.1:6379/0")
    theirs = Connection(host="127.0.0.1", port=6379)
    assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))
    pipeline = [command, ("INCR", "n"), ("EXPIRE", "n", 60)]
    assert b"".join(ours.pack_commands(pipeline)) == b"".join(theirs.pack_commands(pipeline))


@pytest.mark.asyncio
@pytest.mark.parametrize("value", [None, True, {"a": 1}])
async def test_a_value_redis_refuses_is_refused_as_redis_py_refuses_it(value: object) -> None:
    ours = await connection_for("redis://127.0.0.1:6379/0")
    with pytest.raises(DataError, match="Invalid input of type"):
        ours.pack_command("SET", "k", value)


@pytest.mark.asyncio
async def test_hiredis_packs_the_common_commands_and_redis_py_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = redis_connections.hiredis.pack_command
    packed: list[tuple[Any, ...]] = []

    def spy(args: tuple[Any, ...]) -> bytes:
        packed.append(args)
        return real(args)

    monkeypatch.setattr(redis_connections.hiredis, "pack_command", spy)
    ours = await connection_for("redis://127.0.0.1:6379/0")
    ours.pack_command("SET", "k", b"v", "EX", 60)
    assert packed == [(b"SET", "k", b"v", "EX", 60)]
    packed.clear()
    wire = b"".join(ours.pack_command("SET", "k", memoryview(b"held elsewhere")))
    assert wire.endswith(b"$14\r\nheld elsewhere\r\n")
    assert len(packed) == 1  # tried, refused by hiredis, packed by redis-py instead
