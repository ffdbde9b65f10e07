"""A dedicated single-node Kafka broker (KRaft) whose only client listener is SASL_SSL with SCRAM.

It runs from the jars ``services/run.sh`` already resolved (``$KAFKA_LIBS_DIR``, else
``$SERVICES_DIR/cache/kafka-libs``, else ``<repo>/.services/cache/kafka-libs``) and never
downloads anything or touches the shared broker: its own free ports, its own
directory, a small heap. The client listener presents a certificate from a
throwaway CA in PEM form (``ssl.keystore.type=PEM``) and accepts SCRAM-SHA-512
only; the SCRAM user is created when the storage is formatted (``--add-scram``).
Inter-broker and controller traffic stay on loopback plaintext listeners, which
no test client uses.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from tests.support.processes import listening, stop, wait_until_ready
from tests.support.tls import Pki, make_pki
from tests.support.worker import WorkerStack
from worker.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]
USER = "svc-worker"
MECHANISM = "SCRAM-SHA-512"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True, slots=True)
class SecureKafka:
    """A running SASL_SSL broker and what a client needs to reach it."""

    bootstrap: str
    password: str
    pki: Pki
    log: Path

    def settings(self, **values: object) -> KafkaSettings:
        """Client settings for this broker: SASL_SSL, SCRAM-SHA-512, verified against its CA."""
        chosen: dict[str, object] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_username": USER,
            "sasl_password": SecretStr(self.password),
            "tls_ca_cert": self.pki.ca_cert,
            **values,
        }
        return KafkaSettings(**chosen)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """The same settings as ``KAFKA_*`` variables, for a worker process."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": USER,
            "KAFKA_SASL_PASSWORD": self.password,
            "KAFKA_TLS_CA_CERT": str(self.pki.ca_cert),
        }


def kafka_libs() -> Path:
    """The jar directory services/run.sh filled; an error (never a skip) when it is missing."""
    configured = os.environ.get("KAFKA_LIBS_DIR")
    services = Path(os.environ.get("SERVICES_DIR", REPO / ".services"))
    libs = Path(configured) if configured else services / "cache" / "kafka-libs"
    if not any(libs.glob("kafka_*.jar")):
        raise RuntimeError(
            f"no Kafka jars in {libs}: run `make services-up` (or set KAFKA_LIBS_DIR)"
        )
    return libs


def _free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _properties(directory: Path, pki: Pki, ports: list[int]) -> str:
    client, internal, controller = ports
    keystore = directory / "broker-keystore.pem"
    # Kafka's PEM key store: the PKCS#8 key and the certificate chain in one file.
    keystore.write_bytes(pki.server_key.read_bytes() + pki.server_cert.read_bytes())
    keystore.chmod(0o600)
    return f"""
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=SASL_SSL://127.0.0.1:{client},INTERNAL://127.0.0.1:{internal},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=SASL_SSL://127.0.0.1:{client},INTERNAL://127.0.0.1:{internal}
listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms={MECHANISM}
listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={_SCRAM_LOGIN}
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.client.auth=none
log.dirs={directory / "data"}
num.partitions=1
num.network.threads=2
num.io.threads=2
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=2
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=2
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
"""


def _java(libs: Path, heap: str, *args: str) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java is not installed (services/run.sh installs it)")
    return [
        java,
        heap,
        "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={REPO / 'services' / 'kafka' / 'log4j2.yaml'}",
        "-Dservices.log.level=INFO",
        "-cp",
        f"{libs}/*",
        *args,
    ]


def new_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, base64url without padding (it may begin with ``-``)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def format_storage(libs: Path, properties: Path, cluster_id: str, password: str) -> None:
    """Format the broker's storage and create the SCRAM user; an error with the tool's output.

    The id is passed as ``--cluster-id=ID``: one in 64 random ids begins with ``-``,
    which the tool would otherwise read as an option.
    """
    formatted = subprocess.run(
        _java(
            libs,
            "-Xmx128m",
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(properties),
            f"--cluster-id={cluster_id}",
            "--add-scram",
            f"{MECHANISM}=[name={USER},password={password}]",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if formatted.returncode != 0:
        raise RuntimeError(f"kafka storage format failed:\n{formatted.stdout}\n{formatted.stderr}")


@contextmanager
def secure_kafka(
    directory: Path, password: str, *, timeout_s: float = 180
) -> Iterator[SecureKafka]:
    """Format, start and (on exit) stop a SASL_SSL broker in ``directory``."""
    libs = kafka_libs()
    pki = make_pki(directory / "pki", name="kafka")
    ports = _free_ports(3)
    properties = directory / "server.properties"
    properties.write_text(_properties(directory, pki, ports))
    log = directory / "kafka.log"
    format_storage(libs, properties, new_cluster_id(), password)
    with log.open("wb") as out:
        process = subprocess.Popen(
            _java(libs, "-Xmx384m", "-Xms128m", "kafka.Kafka", str(properties)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    # Its port may open before the SCRAM users are loaded: ready once it says it started.
    def started() -> bool:
        return "Kafka Server started" in log.read_text(errors="replace") and listening(ports[0])

    try:
        wait_until_ready("the broker", process, started, [log], timeout_s=timeout_s, poll_s=0.2)
        yield SecureKafka(f"127.0.0.1:{ports[0]}", password, pki, log)
    finally:
        stop(process, timeout_s=60)


@dataclass
class SecureWorkerStack(WorkerStack):
    """A :class:`WorkerStack` whose every Kafka client (worker and test side) speaks SASL_SSL."""

    broker: SecureKafka | None = None

    @property
    def secure(self) -> SecureKafka:
        assert self.broker is not None, "SecureWorkerStack needs its broker"
        return self.broker

    @property
    def kafka(self) -> KafkaSettings:
        return self.secure.settings(topic_prefix=f"{self.run_id}.")

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, **self.secure.env()}
