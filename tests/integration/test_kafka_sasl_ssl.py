"""The worker's Kafka clients against a real SASL_SSL broker: SCRAM over verified TLS.

The broker is a dedicated one (``secure_broker``): its only client listener is
SASL_SSL with SCRAM-SHA-512, its certificate comes from a throwaway CA.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from tests.support.kafka import read_topics
from tests.support.secure_kafka import SecureKafka
from tests.support.settings import settings_under
from tests.support.tls import make_pki
from worker.connections.kafka import client_options, start_client
from worker.doctor import check_kafka
from worker.errors import ConfigurationError
from worker.kafka_admin import check_topics, create_topics
from worker.publish.produce import send_records
from worker.settings import KafkaSettings
from worker.topology import load_topology

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio,
    # aiokafka leaves the socket of a refused connection (bad password, untrusted
    # certificate, plaintext against TLS) to the garbage collector, which warns
    # whenever it runs, in whichever test that is.
    pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning"),
]

TOPOLOGY = load_topology(Path(__file__).resolve().parents[2] / "topics" / "topics.toml")
#: Guards each negative case against a hang; a refusal comes back long before.
REFUSAL_DEADLINE_S = 60


@pytest.fixture(autouse=True, scope="module")
def _collect_refused_sockets() -> Iterator[None]:
    """Collect the refused connections' sockets here, not in another module's test."""
    yield
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "unclosed", ResourceWarning)
        gc.collect()


async def test_admin_creates_the_declared_topics_and_records_go_round_trip(
    secure_broker: SecureKafka,
) -> None:
    settings = secure_broker.settings(topic_prefix=f"t{uuid.uuid4().hex[:8]}.")
    created = await create_topics(settings, TOPOLOGY)
    assert created, "the topology declares topics"
    assert all(report.ok and report.created for report in created), created
    assert all(report.ok for report in await check_topics(settings, TOPOLOGY))

    topic = settings.topic(TOPOLOGY.by_role("requests").name)
    records = [(topic, f"k{i}".encode(), f"v{i}".encode()) for i in range(20)]
    await send_records(settings, records, headers=[[("h", b"x")]] * len(records))
    received = await asyncio.to_thread(
        read_topics,
        settings,
        [topic],
        until=lambda seen: len(seen) >= len(records),
        timeout_s=60,
    )
    assert sorted((r.key, r.value) for r in received) == sorted((k, v) for _, k, v in records)
    assert all(r.headers == {"h": b"x"} for r in received)


async def test_the_doctor_checks_the_secure_broker_with_the_same_settings(
    secure_broker: SecureKafka, tmp_path: Path
) -> None:
    settings = settings_under(tmp_path, kafka=secure_broker.settings())
    [reached] = (await check_kafka(settings, TOPOLOGY, timeout_s=20))[:1]
    assert (reached.check, reached.status) == ("kafka", "ok"), reached.detail


async def test_a_wrong_password_is_a_configuration_error_not_a_hang(
    secure_broker: SecureKafka,
) -> None:
    settings = secure_broker.settings(sasl_password=SecretStr("not-" + secure_broker.password))
    with pytest.raises(ConfigurationError, match="refused the SASL credentials") as refused:
        await asyncio.wait_for(check_topics(settings, TOPOLOGY), REFUSAL_DEADLINE_S)
    assert refused.value.code == "configuration_invalid"
    assert secure_broker.password not in str(refused.value)


async def test_a_broker_certificate_from_another_ca_is_refused(
    secure_broker: SecureKafka, tmp_path: Path
) -> None:
    stranger = make_pki(tmp_path, name="stranger")
    settings = secure_broker.settings(tls_ca_cert=stranger.ca_cert)
    producer = AIOKafkaProducer(**client_options(settings))
    try:
        with pytest.raises(ConfigurationError, match="certificate does not verify"):
            await asyncio.wait_for(start_client(producer, settings), REFUSAL_DEADLINE_S)
    finally:
        await producer.stop()


async def test_a_plaintext_client_cannot_use_the_sasl_ssl_listener(
    secure_broker: SecureKafka,
) -> None:
    settings = KafkaSettings(bootstrap_servers=secure_broker.bootstrap)
    producer = AIOKafkaProducer(**client_options(settings))
    try:
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(start_client(producer, settings), REFUSAL_DEADLINE_S)
    finally:
        await producer.stop()
