"""A worker process whose Kafka is SASL_SSL only: signed requests in, responses out, clean stop."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.conftest import Services
from tests.support.kafka import counts_reach, produce, read_topics
from tests.support.secure_kafka import SecureKafka, SecureWorkerStack
from worker.loadgen import TENANTS, workload

pytestmark = pytest.mark.e2e


def test_the_worker_serves_signed_requests_over_sasl_ssl(
    services: Services, secure_broker: SecureKafka, tmp_path: Path
) -> None:
    stack = SecureWorkerStack(
        secure_broker.bootstrap, services.redis_url, tmp_path / "stack", broker=secure_broker
    )
    stack.root.mkdir(parents=True)
    stack.create_topics()
    topics = stack.topics
    samples = stack.sign(workload(40, 10, run_id=stack.run_id), *TENANTS)
    expected_dead = [s for s in samples if s.dead_letter]
    produce(stack.kafka, topics.requests, samples)
    stack.start()
    try:
        received = read_topics(
            stack.kafka,
            [topics.responses, topics.dead_letters],
            until=counts_reach(
                {topics.responses: len(samples), topics.dead_letters: len(expected_dead)}
            ),
            timeout_s=180,
            settle_s=2,
            alive=stack.alive,
        )
    finally:
        code = stack.stop()
    assert code == 0, stack.logs()
    responses = {r.key: r for r in received if r.topic == topics.responses}
    assert len([r for r in received if r.topic == topics.responses]) == len(samples)
    assert len([r for r in received if r.topic == topics.dead_letters]) == len(expected_dead)
    for sample in samples:
        body = orjson.loads(responses[sample.key].value)
        assert body["status"] == sample.status, (sample, body)
    assert stack.kafka.sasl_password is not None
    assert secure_broker.password not in stack.logs(), "the SASL password is never logged"
