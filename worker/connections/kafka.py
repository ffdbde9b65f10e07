"""The Kafka security options of every client: aiokafka's keyword arguments and Faust's credentials.

:func:`client_options` is the one place that turns ``KAFKA_*`` security settings
into aiokafka options; :func:`faust_credentials` wraps the same options for
Faust. Faust decides the protocol from its credentials' type, and its
``SASLCredentials`` speak SASL_PLAINTEXT unless they carry an SSL context, so
SASL_SSL is only ever built with one.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, Protocol

import faust
from aiokafka.errors import KafkaConnectionError
from faust.types.auth import CredentialsT

from worker.connections.tls import client_context
from worker.errors import ConfigurationError
from worker.settings import KafkaSettings

# What aiokafka logs (and does not raise) when a broker refuses the credentials or its
# certificate does not verify: the bootstrap error itself only says "Unable to bootstrap".
_REFUSALS = {
    "SaslAuthenticationFailed": "the broker refused the SASL credentials. Operator action: "
    "check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD and KAFKA_SASL_MECHANISM",
    "CERTIFICATE_VERIFY_FAILED": "the broker's certificate does not verify. Operator action: "
    "check KAFKA_TLS_CA_CERT (the CA that signed it) and the broker's address",
    "UnsupportedSaslMechanism": "the broker does not offer KAFKA_SASL_MECHANISM",
}


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for ``SSL`` and ``SASL_SSL``; None for the plaintext protocols."""
    if not settings.security_protocol.endswith("SSL"):
        return None
    return client_context(
        prefix="KAFKA_",
        ca_cert=settings.tls_ca_cert,
        client_cert=settings.tls_client_cert,
        client_key=settings.tls_client_key,
        check_hostname=settings.tls_check_hostname,
    )


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security keyword arguments of an aiokafka client.

    For ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient``
    alike: ``AIOKafkaProducer(**client_options(settings), acks="all")``.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL_"):
        password = settings.sasl_password
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=password.get_secret_value() if password else None,
        )
    return options


def faust_credentials(settings: KafkaSettings) -> CredentialsT | None:
    """The ``broker_credentials`` of the Faust app: the same protocol as :func:`client_options`."""
    options = client_options(settings)
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(options["ssl_context"])
    return faust.SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        mechanism=options["sasl_mechanism"],
        # None for SASL_PLAINTEXT: Faust then speaks SASL_PLAINTEXT, as configured.
        ssl_context=options.get("ssl_context"),
    )


class _Startable(Protocol):
    async def start(self) -> None: ...


class _Refusals(logging.Handler):
    """Collects aiokafka's reasons for refusing a bootstrap broker while a client starts."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        self.found.extend(reason for marker, reason in _REFUSALS.items() if marker in text)


async def start_client(client: _Startable, settings: KafkaSettings) -> None:
    """``client.start()``; a broker refusing the credentials or the TLS handshake is a typed error.

    Raises :class:`~worker.errors.ConfigurationError` (``configuration_invalid``) when
    the broker was reached but refused what ``KAFKA_*`` configures; an unreachable
    broker raises aiokafka's ``KafkaConnectionError`` as before.
    """
    refusals = _Refusals()
    logger = logging.getLogger("aiokafka")
    logger.addHandler(refusals)
    try:
        await client.start()
    except KafkaConnectionError as exc:
        if not refusals.found:
            raise
        raise ConfigurationError(
            f"Kafka at {settings.bootstrap_servers} ({settings.security_protocol}): "
            f"{refusals.found[0]}",
            details={"bootstrap_servers": settings.bootstrap_servers},
        ) from exc
    finally:
        logger.removeHandler(refusals)
