"""``worker keys`` against the real Redis: secrets shown once, stored sealed, never listed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import orjson
import pytest
import redis

from tests.conftest import Services
from tests.support.worker import REPO
from worker.auth.secrets import new_master_key

pytestmark = pytest.mark.integration


def test_create_list_rotate_revoke(services: Services) -> None:
    prefix = f"keys-{uuid.uuid4().hex[:8]}:"
    master = new_master_key()
    env = {
        "REDIS_URL": services.redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "SECURITY_MASTER_KEY": master,
    }

    def keys(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "worker", "keys", *args],
            env={**os.environ, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert master not in done.stdout + done.stderr
        return done.stdout

    created = orjson.loads(
        keys(
            "create",
            "--tenant",
            "acme",
            "--scope",
            "price:read",
            "--scope",
            "text:analyze",
            "--json",
        )
    )
    key_id, secret = created["key_id"], created["secret"]
    assert created["version"] == 1
    assert created["scopes"] == ["price:read", "text:analyze"]

    raw = redis.Redis.from_url(services.redis_url).get(f"{prefix}cred:{key_id}")
    assert raw is not None
    assert secret.encode() not in raw, "stored sealed, never in plaintext"

    listed = keys("list")
    assert key_id in listed
    assert secret not in listed

    rotated = orjson.loads(keys("rotate", key_id, "--grace", "60", "--json"))
    assert rotated["version"] == 2
    assert rotated["secret"] != secret
    [entry] = [orjson.loads(line) for line in keys("list", "--json").splitlines()]
    assert [(v["version"], v["valid"]) for v in entry["versions"]] == [(1, True), (2, True)]
    assert entry["versions"][0]["expires_at"] is not None

    assert "revoked" in keys("revoke", key_id)
    [entry] = [orjson.loads(line) for line in keys("list", "--json").splitlines()]
    assert entry["status"] == "revoked"
