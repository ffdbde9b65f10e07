"""The topic declarations in topics/topics.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.settings import default_settings
from worker.app import TopicNames
from worker.errors import ConfigurationError
from worker.settings import (
    KafkaSettings,
    SecuritySettings,
)
from worker.topology import load_topology

TOPIC = """
[[topic]]
name = "{name}"
role = "{role}"
partitions = 2
replication_factor = 1
key = "k"
value = "v"
"""


def declarations(tmp_path: Path, *topics: tuple[str, str], extra: str = "") -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(
        "".join(TOPIC.format(name=n, role=r) for n, r in topics) + extra, encoding="utf-8"
    )
    return path


@pytest.fixture
def topics_file(pytestconfig: pytest.Config) -> Path:
    return pytestconfig.rootpath / "topics" / "topics.toml"


def test_the_committed_declarations_have_every_role(topics_file: Path) -> None:
    topology = load_topology(topics_file)
    assert sorted(spec.role for spec in topology.topic) == [
        "cache_entries",
        "cache_index",
        "cache_invalidations",
        "dead_letters",
        "reference_products",
        "reference_rates",
        "requests",
        "responses",
    ]
    assert topology.by_role("requests").name == "requests"
    assert topology.by_role("responses").name == "responses"
    dead = topology.by_role("dead_letters")
    assert dead.name == "requests.dead-letter"
    assert dead.config() == {"cleanup.policy": "delete", "retention.ms": "2592000000"}


def test_topic_names_get_the_prefix(topics_file: Path) -> None:
    settings = default_settings(
        kafka=KafkaSettings(topic_prefix="run1."), security=SecuritySettings(auth_modes="none")
    )
    names = TopicNames.resolve(settings, load_topology(topics_file))
    assert names == TopicNames("run1.requests", "run1.responses", "run1.requests.dead-letter")


def test_a_valid_file_is_read(tmp_path: Path) -> None:
    path = declarations(tmp_path, ("a", "requests"), ("b", "responses"), ("c", "dead_letters"))
    topology = load_topology(path)
    assert [spec.name for spec in topology.topic] == ["a", "b", "c"]
    assert topology.by_role("responses").partitions == 2


def test_a_role_declared_twice_is_a_configuration_error(tmp_path: Path) -> None:
    path = declarations(tmp_path, ("a", "requests"), ("b", "requests"), ("c", "responses"))
    with pytest.raises(ConfigurationError, match="declares a role twice"):
        load_topology(path)


def test_bad_toml_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text("[[topic]\nname = ", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_topology(path)


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        load_topology(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("line", "replacement"),
    [
        ("partitions = 2", "partitions = 0"),  # out of range
        ('key = "k"', 'key = "k"\nunknown = "x"'),  # an undeclared setting
        ('value = "v"', ""),  # a required setting left out
    ],
)
def test_an_invalid_declaration_is_a_configuration_error(
    tmp_path: Path, line: str, replacement: str
) -> None:
    path = declarations(tmp_path, ("a", "requests"))
    path.write_text(path.read_text(encoding="utf-8").replace(line, replacement), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not a valid topic declaration"):
        load_topology(path)


def test_an_unknown_role_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a valid topic declaration"):
        load_topology(declarations(tmp_path, ("a", "audit")))


def test_asking_for_an_undeclared_role_is_a_configuration_error(tmp_path: Path) -> None:
    topology = load_topology(declarations(tmp_path, ("a", "requests")))
    with pytest.raises(ConfigurationError, match="dead_letters"):
        topology.by_role("dead_letters")
