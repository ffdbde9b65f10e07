"""The worker's consumer, started against the real broker, fetches with the configured wait."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.conftest import Services
from tests.support.settings import settings_under
from worker.app import build_app
from worker.auth.secrets import new_master_key
from worker.settings import KafkaSettings, SecuritySettings

pytestmark = pytest.mark.integration


@pytest.mark.asyncio
async def test_the_started_fetcher_holds_empty_fetches_for_the_configured_wait(
    services: Services, tmp_path: Path
) -> None:
    settings = settings_under(
        tmp_path,
        kafka=KafkaSettings(bootstrap_servers=services.bootstrap, fetch_max_wait_ms=37),
        security=SecuritySettings(auth_modes="hmac", master_key=SecretStr(new_master_key())),
    )
    app = build_app(settings).faust
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    await consumer.start()
    try:
        # What every FetchRequest of this consumer carries as its max wait.
        assert consumer._fetcher._fetch_max_wait_ms == 37
    finally:
        await consumer.stop()
