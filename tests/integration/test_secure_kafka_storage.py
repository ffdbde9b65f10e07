"""The dedicated SASL_SSL broker's storage format, by Kafka's own tool from the resolved jars."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.support.secure_kafka import format_storage, kafka_libs, new_cluster_id

pytestmark = pytest.mark.integration


def test_a_cluster_id_that_begins_with_a_dash_is_formatted_as_given(tmp_path: Path) -> None:
    # base64url ids begin with "-" one time in 64; the tool must not read one as an option.
    cluster_id = "-" + new_cluster_id()[1:]
    data = tmp_path / "data"
    properties = tmp_path / "server.properties"
    properties.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                "controller.quorum.voters=1@127.0.0.1:1",
                "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:1",
                "controller.listener.names=CONTROLLER",
                f"log.dirs={data}",
            ]
        )
        + "\n"
    )

    format_storage(kafka_libs(), properties, cluster_id, secrets.token_urlsafe(12))

    meta = dict(
        line.split("=", 1)
        for line in (data / "meta.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert meta["cluster.id"] == cluster_id


def test_new_cluster_ids_are_22_base64url_characters() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(
        len(i) == 22
        and set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for i in ids
    )
