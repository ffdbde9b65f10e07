"""How the sink reads ClickHouse failures and paces its inserts: pure logic, no I/O."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError as ClickHouseDatabaseError
from clickhouse_connect.driver.exceptions import OperationalError

from worker.errors import DatabaseError, DatabaseOverloadedError
from worker.sinks.pacing import InsertPacer, classify, clickhouse_code

TOO_MANY_PARTS = ClickHouseDatabaseError(
    "Code: 252. DB::Exception: Too many parts (3001). Merges are processing significantly "
    "slower than inserts. (TOO_MANY_PARTS) (version 25.8.8.26)"
)
MEMORY = ClickHouseDatabaseError(
    "Code: 241. DB::Exception: Memory limit (for query) exceeded. (MEMORY_LIMIT_EXCEEDED)"
)
REFUSED = OperationalError("Error HTTPConnectionPool(host='ch', port=8123): Connection refused")


class TestClassify:
    def test_the_clickhouse_code_is_read_from_the_message(self) -> None:
        assert clickhouse_code(TOO_MANY_PARTS) == 252
        assert clickhouse_code(REFUSED) is None

    def test_too_many_parts_is_an_overload_that_does_not_shrink_inserts(self) -> None:
        error = classify(TOO_MANY_PARTS)
        assert isinstance(error, DatabaseOverloadedError)
        assert (error.code, error.clickhouse_code, error.name) == (
            "database_overloaded",
            252,
            "TOO_MANY_PARTS",
        )
        assert error.shrink is False
        assert error.retriable

    def test_a_memory_limit_is_an_overload_that_shrinks_inserts(self) -> None:
        error = classify(MEMORY)
        assert isinstance(error, DatabaseOverloadedError)
        assert error.shrink is True

    def test_anything_else_is_unavailable_and_keeps_its_code(self) -> None:
        refused = classify(REFUSED)
        assert type(refused) is DatabaseError
        assert refused.code == "database_unavailable"
        assert "Connection refused" in refused.message
        other = classify(ClickHouseDatabaseError("Code: 60. DB::Exception: Unknown table"))
        assert type(other) is DatabaseError
        assert other.details["clickhouse_code"] == 60

    def test_a_worker_error_passes_through(self) -> None:
        error = DatabaseError("already ours")
        assert classify(error) is error


def pacer(**overrides: float) -> InsertPacer:
    values: dict[str, float] = {
        "min_rows": 100,
        "retry_base_s": 0.1,
        "retry_max_s": 8.0,
        "overload_pause_min_s": 1.0,
        "grow_after": 3,
    }
    values.update(overrides)
    return InsertPacer(
        1000,
        min_rows=int(values["min_rows"]),
        retry_base_s=values["retry_base_s"],
        retry_max_s=values["retry_max_s"],
        overload_pause_min_s=values["overload_pause_min_s"],
        grow_after=int(values["grow_after"]),
    )


class TestInsertPacer:
    def test_unavailable_backs_off_exponentially_up_to_the_cap(self) -> None:
        p = pacer()
        delays = [p.failed(classify(REFUSED), attempt) for attempt in range(8)]
        assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 8.0]
        assert p.pause_s == 0.0, "an unreachable server is not an overloaded one"
        assert p.max_rows == 1000

    def test_an_outage_of_any_length_keeps_the_capped_delay(self) -> None:
        # At the 8 s cap, attempt 1,024 comes over two hours into an outage.
        p = pacer()
        assert [p.failed(classify(REFUSED), attempt) for attempt in (1023, 1024, 10**6)] == [
            8.0,
            8.0,
            8.0,
        ]

    def test_too_many_parts_pauses_between_inserts_and_keeps_their_size(self) -> None:
        p = pacer()
        assert p.failed(classify(TOO_MANY_PARTS), 0) == 1.0
        assert p.failed(classify(TOO_MANY_PARTS), 1) == 2.0
        assert p.pause_s == 2.0
        assert p.max_rows == 1000
        p.started(100.0)
        assert p.wait_before_insert(100.5) == pytest.approx(1.5)
        assert p.wait_before_insert(103.0) == 0.0

    def test_the_pause_never_exceeds_the_retry_cap(self) -> None:
        p = pacer(retry_max_s=3.0)
        for attempt in range(10):
            p.failed(classify(TOO_MANY_PARTS), attempt)
        assert p.pause_s == 3.0

    def test_successes_relax_the_pause_back_to_zero(self) -> None:
        p = pacer()
        for attempt in range(3):
            p.failed(classify(TOO_MANY_PARTS), attempt)
        assert p.pause_s == 4.0
        pauses = []
        for _ in range(8):
            p.succeeded()
            pauses.append(p.pause_s)
        assert pauses[:3] == [2.0, 1.0, 0.5]
        assert pauses[-1] == 0.0
        p.started(50.0)
        assert p.wait_before_insert(50.0) == 0.0

    def test_memory_errors_halve_inserts_down_to_the_floor(self) -> None:
        p = pacer(min_rows=200)
        sizes = []
        for attempt in range(4):
            p.failed(classify(MEMORY), attempt)
            sizes.append(p.max_rows)
        assert sizes == [500, 250, 200, 200]

    def test_inserts_grow_back_after_a_run_of_successes(self) -> None:
        p = pacer(min_rows=100, grow_after=3)
        p.failed(classify(MEMORY), 0)
        p.failed(classify(MEMORY), 1)
        assert p.max_rows == 250
        p.succeeded()
        p.succeeded()
        assert p.max_rows == 250
        p.succeeded()
        assert p.max_rows == 500
        for _ in range(3):
            p.succeeded()
        assert p.max_rows == 1000
        for _ in range(3):
            p.succeeded()
        assert p.max_rows == 1000, "never above the configured maximum"

    def test_a_failure_restarts_the_run_of_successes(self) -> None:
        p = pacer(grow_after=3)
        p.failed(classify(MEMORY), 0)
        p.succeeded()
        p.succeeded()
        p.failed(classify(REFUSED), 0)
        p.succeeded()
        p.succeeded()
        assert p.max_rows == 500

    def test_the_floor_never_exceeds_the_maximum(self) -> None:
        p = InsertPacer(50, min_rows=100)
        p.failed(classify(MEMORY), 0)
        assert p.max_rows == 50
