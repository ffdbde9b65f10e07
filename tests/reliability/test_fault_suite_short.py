"""The fault-injection suite's short profile, as CI runs it: every scenario must hold.

``python -m reliability --profile short`` starts its own broker and Redis, kills,
stops and starves workers under load, and writes one row per scenario; this test
runs it and checks every row: nothing lost, no request stored twice with FINAL,
the dead letters exactly the poison sent (by reason), every answer the one owed,
and the evidence that each fault really happened. It runs every scenario in the
default delivery order (responses beside the insert), and those that meet the
order again with each batch stored before it is answered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from reliability.profiles import SHORT
from reliability.scenarios import scenarios
from tests.conftest import Services
from tests.support.worker import REPO

pytestmark = pytest.mark.e2e


#: The scenarios whose path differs between the two delivery orders: kills around
#: the insert and the acknowledgement, a stop mid-batch, a rebalance, and ClickHouse
#: failing (answered first, a batch's rows are stored after its responses went out).
STORE_FIRST_SCENARIOS = (
    "kill-before_insert",
    "kill-after_insert",
    "kill-after_publish",
    "kill-after_ack",
    "sigterm-mid-batch",
    "rebalance-join-leave",
    "clickhouse-down-5s",
)


def run_suite(
    tmp_path: Path, *only: str, env: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Run the short profile (``only`` these scenarios, if any); its rows by scenario.

    ``env`` reaches every worker the suite starts.
    """
    out = tmp_path / "faults-results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reliability",
            "--profile",
            "short",
            "--out",
            str(out),
            "--markdown",
            str(tmp_path / "faults-results.md"),
            "--workdir",
            str(tmp_path / "work"),
            *(option for name in only for option in ("--only", name)),
        ],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert out.exists(), f"no results written:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    results = orjson.loads(out.read_bytes())
    rows = {row["scenario"]: row for row in results["scenarios"]}
    expected = [name for name, _ in scenarios(SHORT) if not only or name in only]
    assert list(rows) == expected, "every scenario ran"
    for name, row in rows.items():
        assert row["error"] is None, (name, row["error"], row.get("worker_errors"))
        assert row["sent"] > 0, name
        assert row["send_failed"] == 0, name
        assert row["lost"] == 0, (name, row["missing_by_kind"])
        assert row["duplicates_final"] == 0, name
        assert row["dead_letters_by_reason"] == row["poison_dead_letters_expected"], name
        assert row["wrong_answers"] == 0, name
        assert row["unsolicited"] == 0, name
        assert row["checks"], name
        assert all(row["checks"].values()), (name, row["checks"], row.get("worker_errors"))
        assert row["passed"], name
    assert done.returncode == 0, done.stderr[-3000:]
    return rows


@pytest.mark.timeout(900)
def test_the_short_fault_suite_loses_nothing_and_stores_each_request_once(
    services: Services, tmp_path: Path
) -> None:
    # The suite runs its own services; the shared ones provide the Kafka jar cache.
    del services
    rows = run_suite(tmp_path)
    poisoned = rows["poison"]["dead_letters_by_reason"]
    for reason in (
        "invalid_payload",
        "payload_too_large",
        "payload_too_deep",
        "string_too_long",
        "array_too_long",
        "validation_failed",
        "unknown_operation",
    ):
        assert poisoned.get(reason, 0) > 0, ("the poison reached every reject", reason)


@pytest.mark.timeout(900)
def test_the_faults_that_meet_the_delivery_order_hold_when_batches_are_stored_first(
    services: Services, tmp_path: Path
) -> None:
    del services
    rows = run_suite(tmp_path, *STORE_FIRST_SCENARIOS, env={"WORKER_RESPOND_FIRST": "false"})
    assert set(rows) == set(STORE_FIRST_SCENARIOS)
    logs = sorted((tmp_path / "work").glob("*/worker*/*.log"))
    assert {log.parent.parent.name for log in logs} == set(STORE_FIRST_SCENARIOS)
    for log in logs:
        assert "each batch stored before it is answered" in log.read_text(), log
