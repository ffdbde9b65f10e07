"""Sensitive fields through the real stack: useful rows for analysts, no plaintext anywhere.

``text.stats`` declares its ``text`` param ``encrypt`` and its ``top_words``
result ``omit``. A worker (real broker, Redis and chDB, debug logging) answers
such requests in full; its ClickHouse rows hold the params and results with the
text sealed as ``enc:v1:`` and the top words left out, and neither the rows, the
dead letters (topic and table) nor the logs hold the text in clear. ``worker db
decrypt`` opens the rows with the master key, and not with another.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from tests.support.kafka import read_topics
from tests.support.requests import ask, quote, request, stats
from tests.support.worker import WorkerStack
from worker.auth.secrets import new_master_key

pytestmark = pytest.mark.e2e

PRIVATE = "zebra quokka zebra marmalade"


def test_sensitive_fields_are_encrypted_or_omitted_in_rows_and_never_in_clear(
    worker_stack: Callable[..., WorkerStack],
) -> None:
    stack = worker_stack(WORKER_LOG_LEVEL="debug")
    stack.start()
    private = stats(PRIVATE)
    # top as a string: validation_failed, so a dead letter (and its row) with the text.
    rejected = request("text.stats", {"text": PRIVATE, "top": "3"})
    priced = quote("SKU-1", 2)
    answered, refused, quoted = ask(stack, [private, rejected, priced])
    letters = read_topics(
        stack.bootstrap,
        [stack.topics.dead_letters],
        until=lambda records: len(records) >= 1,
        timeout_s=60,
        alive=stack.alive,
    )
    rows = {
        row["request_id"]: row
        for row in stack.query(
            "SELECT request_id, params, result, cache_params, error_code FROM requests FINAL"
        )
    }
    dead_rows = stack.query("SELECT payload FROM dead_letters")
    # Rows as `worker db query --format json` prints them, one argument each.
    decrypted = stack.cli("db", "decrypt", *(orjson.dumps(row).decode() for row in rows.values()))
    stack.extra_env["SECURITY_MASTER_KEY"] = new_master_key()
    wrong_key = stack.cli("db", "decrypt", orjson.loads(rows[private.request_id]["params"])["text"])
    assert stack.stop() == 0, stack.logs()

    # The client is answered in full, the top words included.
    assert answered["data"]["top_words"][0] == {"word": "zebra", "count": 2}
    assert refused["error"]["code"] == "validation_failed"
    assert quoted["status"] == "ok"

    # The analyst's view: what was asked and answered, the sensitive parts sealed or left out.
    row = rows[private.request_id]
    params = orjson.loads(row["params"])
    assert params["top"] == 3
    assert params["text"].startswith("enc:v1:")
    assert orjson.loads(row["result"]) == {"characters": 28, "words": 4, "lines": 1}
    assert row["cache_params"] == "", "the cache's params would hold the text in clear"
    assert (rows[rejected.request_id]["params"], rows[rejected.request_id]["error_code"]) == (
        "",
        "validation_failed",
    )
    quote_row = rows[priced.request_id]
    assert orjson.loads(quote_row["params"]) == {"sku": "SKU-1", "quantity": 2, "currency": "EUR"}
    assert orjson.loads(quote_row["result"])["total"] == quoted["data"]["total"]
    assert orjson.loads(quote_row["cache_params"])["sku"] == "SKU-1"

    # Never in clear: rows, dead letters (topic and table), logs.
    assert PRIVATE not in orjson.dumps(list(rows.values())).decode()
    [letter] = letters
    assert letter.headers["dlq-redacted"] == b"params.text"
    assert PRIVATE.encode() not in letter.value
    [dead_row] = dead_rows
    assert "[redacted]" in dead_row["payload"]
    assert PRIVATE not in dead_row["payload"]
    logs = stack.logs()
    assert f"request {rejected.request_id} answered validation_failed" in logs, "debug logged"
    assert PRIVATE not in logs
    assert "zebra" not in logs

    # An operator with the master key opens them; another key does not.
    assert decrypted.returncode == 0, decrypted.stderr.decode()
    opened = {
        line["request_id"]: line
        for line in (orjson.loads(text) for text in decrypted.stdout.splitlines())
    }
    assert opened[private.request_id]["params"] == {"text": PRIVATE, "top": 3}
    assert opened[priced.request_id]["params"]["sku"] == "SKU-1", "clear values pass through"
    assert wrong_key.returncode != 0
    assert b"does not open" in wrong_key.stderr
