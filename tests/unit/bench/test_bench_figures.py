"""The benchmark's arithmetic and parsing, on small made-up inputs (no services, no timing)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.__main__ import main
from bench.load import collector_held
from bench.procstat import Series
from bench.profiling import summarize
from bench.stack import DEFAULT_TOPICS, write_topics_file
from bench.stats import latency_per_second, per_second, percentile, spread
from worker.topology import load_topology


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7


def test_per_second_buckets_from_the_start() -> None:
    assert per_second([10.0, 10.5, 11.2, 13.9], start=10.0) == [2, 1, 0, 1]
    assert per_second([], start=0.0) == []


def test_latency_per_second_groups_requests_by_the_second_they_were_created() -> None:
    pairs = [(100.2, 10.0), (100.9, 30.0), (100.5, 20.0), (102.1, 400.0)]
    assert latency_per_second(pairs, start=100.0) == {
        "p50_ms": [20.0, None, 400.0],
        "p99_ms": [30.0, None, 400.0],
        "max_ms": [30.0, None, 400.0],
    }
    assert latency_per_second([], start=0.0) == {"p50_ms": [], "p99_ms": [], "max_ms": []}


def test_spread_takes_the_median_of_an_even_count_as_the_mean_of_the_middle() -> None:
    assert spread([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0}


def test_cpu_of_a_window_widens_to_the_enclosing_samples() -> None:
    series = Series()
    for t, cpu in [(0.0, 0.0), (1.0, 0.5), (2.0, 1.5), (3.0, 1.6)]:
        series.add(t, cpu)
    assert series.between(1.0, 2.0) == pytest.approx(1.0)
    assert series.between(0.5, 2.5) == pytest.approx(1.6)


def test_topics_file_round_trips_through_the_workers_loader(tmp_path: Path) -> None:
    topology = load_topology(DEFAULT_TOPICS)
    renamed = topology.model_copy(
        update={
            "topic": [
                spec.model_copy(update={"name": f"arm.{spec.name}"}) for spec in topology.topic
            ]
        }
    )
    path = tmp_path / "topics.toml"
    write_topics_file(path, renamed)
    assert load_topology(path) == renamed


def test_profile_charges_library_time_to_the_stage_that_called_it(tmp_path: Path) -> None:
    loop = (
        "thread (1): MainThread;Worker.execute_from_commandline (mode/worker.py:1);"
        "BaseEventLoop._run_once (asyncio/base_events.py:1);Handle._run (asyncio/events.py:80)"
    )
    raw = tmp_path / "raw.txt"
    raw.write_text(
        f"{loop};ValidateStage.__call__ (worker/flow/validate.py:9);"
        "BaseModel.model_validate (pydantic/main.py:1) 6\n"
        f"{loop};KafkaPublisher.publish (worker/publish/kafka.py:3);"
        "AIOKafkaProducer.send (aiokafka/producer/producer.py:5);"
        "ClusterMetadata.partitions_for_topic (aiokafka/cluster.py:2) 3\n"
        f"{loop};select (selectors.py:4) 1\n"
    )
    stages = {row["name"]: row["share"] for row in summarize(raw)["by_stage"]}
    assert stages == {
        "validate": 0.6,
        "aiokafka producer (send, batches, compression)": 0.3,
        "event loop (asyncio scheduling, select), other": 0.1,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "paced"], "--mode paced needs --paced-rate"),
        (
            ["--mode", "paced", "--paced-rate", "3000", "--paced-seconds", "20", "--n", "1000"],
            "it needs 60,500",
        ),
    ],
)
def test_paced_mode_refuses_a_missing_rate_and_too_few_requests(
    args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, [*args, "--no-services"])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_generator_holds_its_collector_off_only_while_it_paces() -> None:
    assert gc.isenabled()
    with collector_held():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
