"""The cache's topics: prefixed like every declared topic, partitioned like the requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.settings import default_settings
from worker.cache.runtime import CacheTopics
from worker.errors import ConfigurationError
from worker.settings import (
    KafkaSettings,
    Settings,
)
from worker.topology import load_topology

ROLES = ("requests", "cache_entries", "cache_index", "cache_invalidations")


def settings(prefix: str = "") -> Settings:
    return default_settings(kafka=KafkaSettings(topic_prefix=prefix))


def declare(tmp_path: Path, partitions: dict[str, int]) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(
        "".join(
            f'[[topic]]\nname = "{role}"\nrole = "{role}"\npartitions = {partitions.get(role, 4)}\n'
            'replication_factor = 1\nkey = "k"\nvalue = "v"\n'
            for role in ROLES
        ),
        encoding="utf-8",
    )
    return path


def test_the_committed_declarations_resolve_with_the_prefix(pytestconfig: pytest.Config) -> None:
    topology = load_topology(pytestconfig.rootpath / "topics" / "topics.toml")
    topics = CacheTopics.resolve(settings("run1."), topology)
    assert topics == CacheTopics(
        "run1.cache.entries.changelog", "run1.cache.index.changelog", "run1.cache.invalidations", 4
    )


@pytest.mark.parametrize("role", ["cache_entries", "cache_index", "cache_invalidations"])
def test_a_cache_topic_partitioned_unlike_the_requests_is_refused(
    tmp_path: Path, role: str
) -> None:
    topology = load_topology(declare(tmp_path, {role: 3}))
    with pytest.raises(ConfigurationError, match=f"{role} \\(3\\)"):
        CacheTopics.resolve(settings(), topology)
