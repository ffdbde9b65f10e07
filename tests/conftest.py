"""Session-wide real services. Integration and e2e tests fail, never skip, without them."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.secure_kafka import SecureKafka, secure_kafka
from tests.support.worker import REPO, WorkerStack


@dataclass(frozen=True)
class Services:
    bootstrap: str
    redis_url: str


@pytest.fixture(scope="session")
def services() -> Services:
    """Kafka (KRaft) and Redis, started by services/run.sh if they are not running."""
    done = subprocess.run(
        ["bash", str(REPO / "services" / "run.sh"), "up"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"local services could not start:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    return Services(
        bootstrap=f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}",
        redis_url=f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6379')}/0",
    )


@pytest.fixture
def worker_stack(services: Services, tmp_path: Path) -> Iterator[Callable[..., WorkerStack]]:
    """A factory of isolated worker stacks; every process it started is stopped afterwards."""
    stacks: list[WorkerStack] = []

    def make(**extra_env: str) -> WorkerStack:
        stack = WorkerStack(
            services.bootstrap,
            services.redis_url,
            tmp_path / f"stack{len(stacks)}",
            extra_env=dict(extra_env),
        )
        stack.root.mkdir(parents=True)
        stack.create_topics()
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        if stack.alive():
            stack.kill()


@pytest.fixture(scope="session")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A dedicated SASL_SSL (SCRAM-SHA-512) broker beside the shared one; stopped at the end."""
    with secure_kafka(tmp_path_factory.mktemp("secure-kafka"), secrets.token_urlsafe(18)) as broker:
        yield broker
