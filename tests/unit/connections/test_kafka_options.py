"""What ``KAFKA_*`` security settings turn into inside the real Kafka clients.

Each test builds the real client objects (aiokafka's producer, consumer and admin
client, and the Faust app's own producer and consumer) and reads the protocol,
SASL and TLS settings they hold.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr, ValidationError

from tests.support.settings import settings_under
from tests.support.tls import Pki, make_pki
from worker.app import build_app
from worker.auth.secrets import new_master_key
from worker.connections.kafka import client_options, faust_credentials
from worker.errors import ConfigurationError
from worker.settings import KafkaSettings, SecuritySettings

PASSWORD = "kafka-pw-Zq81"  # noqa: S105 - a test value


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def sasl_ssl(pki: Pki, **values: Any) -> KafkaSettings:
    return KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_username="svc-worker",
        sasl_password=SecretStr(PASSWORD),
        tls_ca_cert=pki.ca_cert,
        **values,
    )


def ca_subjects(context: ssl.SSLContext) -> list[str]:
    return [dict(item[0] for item in ca["subject"])["commonName"] for ca in context.get_ca_certs()]


def assert_sasl_ssl(client: Any, mechanism: str = "SCRAM-SHA-512") -> None:
    """``client`` is an aiokafka ``AIOKafkaClient``: what every connection it opens will use."""
    assert client._security_protocol == "SASL_SSL"
    assert client._sasl_mechanism == mechanism
    assert client._sasl_plain_username == "svc-worker"
    assert client._sasl_plain_password == PASSWORD
    context = client._ssl_context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert "test CA" in ca_subjects(context)


@pytest.mark.asyncio
async def test_sasl_ssl_reaches_producer_consumer_and_admin_clients(pki: Pki) -> None:
    options = client_options(sasl_ssl(pki))
    producer = AIOKafkaProducer(**options)
    consumer = AIOKafkaConsumer(**options)
    admin = AIOKafkaAdminClient(**options)
    try:
        assert_sasl_ssl(producer.client)
        assert_sasl_ssl(consumer._client)
        assert_sasl_ssl(admin._client)
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()


@pytest.mark.asyncio
async def test_the_faust_app_gets_sasl_over_tls_not_sasl_plaintext(
    pki: Pki, tmp_path: Path
) -> None:
    settings = settings_under(
        tmp_path,
        kafka=sasl_ssl(pki, sasl_mechanism="SCRAM-SHA-256"),
        security=SecuritySettings(auth_modes="hmac", master_key=SecretStr(new_master_key())),
    )
    app = build_app(settings).faust
    producer = app.producer._new_producer()
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert_sasl_ssl(producer.client, "SCRAM-SHA-256")
        assert_sasl_ssl(consumer._client, "SCRAM-SHA-256")
    finally:
        await producer.stop()
        await consumer.stop()


def test_the_credentials_never_print_the_password(pki: Pki) -> None:
    credentials = faust_credentials(sasl_ssl(pki))
    assert PASSWORD not in repr(credentials)
    assert PASSWORD not in repr(sasl_ssl(pki))
    assert PASSWORD not in str(sasl_ssl(pki))


def test_plaintext_clients_get_no_tls_and_no_sasl() -> None:
    options = client_options(KafkaSettings(bootstrap_servers="k1:9092,k2:9092"))
    assert options == {"bootstrap_servers": "k1:9092,k2:9092", "security_protocol": "PLAINTEXT"}
    assert faust_credentials(KafkaSettings()) is None


def test_ssl_presents_the_client_certificate_for_mutual_tls(pki: Pki) -> None:
    settings = KafkaSettings(
        security_protocol="SSL",
        tls_ca_cert=pki.ca_cert,
        tls_client_cert=pki.client_cert,
        tls_client_key=pki.client_key,
        tls_check_hostname=False,
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in options
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED, "no hostname check still verifies the chain"
    assert context.check_hostname is False
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    credentials = faust_credentials(settings)
    assert credentials is not None
    assert credentials.protocol.value == "SSL"


def test_sasl_plaintext_only_when_explicitly_allowed() -> None:
    values: dict[str, Any] = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_username": "svc",
        "sasl_password": SecretStr(PASSWORD),
    }
    with pytest.raises(ValidationError, match="KAFKA_ALLOW_SASL_PLAINTEXT") as refused:
        KafkaSettings(**values)
    assert PASSWORD not in str(refused.value)
    options = client_options(KafkaSettings(allow_sasl_plaintext=True, **values))
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert "ssl_context" not in options


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs KAFKA_SASL_USERNAME"),
        ({"sasl_username": "svc", "sasl_password": SecretStr("pw")}, "set it to SASL_SSL"),
        ({"tls_ca_cert": Path("/nonexistent/ca.pem"), "security_protocol": "SSL"}, "no such file"),
        ({"tls_check_hostname": False}, "need KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"),
    ],
)
def test_contradictory_kafka_security_is_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(**values)


def test_a_file_that_is_no_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError, match="KAFKA_TLS_CA_CERT") as refused:
        client_options(KafkaSettings(security_protocol="SSL", tls_ca_cert=bogus))
    assert refused.value.code == "configuration_invalid"


@pytest.mark.asyncio
async def test_the_worker_consumer_fetches_with_the_configured_wait(tmp_path: Path) -> None:
    # Faust asks for 1,500 ms; a fetch of idle partitions alone would then hold back
    # the next fetch of requests for that long.
    assert KafkaSettings().fetch_max_wait_ms < 1500
    settings = settings_under(
        tmp_path,
        kafka=KafkaSettings(fetch_max_wait_ms=37),
        security=SecuritySettings(auth_modes="hmac", master_key=SecretStr(new_master_key())),
    )
    app = build_app(settings).faust
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 37
    finally:
        await consumer.stop()
