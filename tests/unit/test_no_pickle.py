"""No pickle anywhere: no module that unpickles, and every Faust serializer is raw bytes.

Unpickling attacker-controlled bytes runs their code. The worker reads bytes
from Kafka (requests, reference data, table changelogs) and Redis; all of it is
decoded as JSON by the worker's own code, never by a pickle-capable codec.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import SecretStr

from tests.support.settings import settings_under
from worker.app import build_app
from worker.auth.secrets import new_master_key
from worker.settings import SecuritySettings

PACKAGE = Path(__file__).resolve().parents[2] / "worker"
#: Modules that turn bytes into arbitrary objects (and run code while doing it).
UNSAFE = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}


def unsafe_uses(source: str) -> list[str]:
    """Imports of an unsafe module, dynamic imports of one, and serializer options naming pickle."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Call):
            arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
            names = [
                argument.value
                for argument in arguments
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str)
            ]
            names = [name for name in names if "pickle" in name or name in UNSAFE]
            found.extend(f"line {node.lineno}: call with {name!r}" for name in names)
            continue
        else:
            continue
        found.extend(
            f"line {node.lineno}: import {name}" for name in names if name.split(".")[0] in UNSAFE
        )
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    sample = (
        "import pickle\nfrom marshal import loads\nimport dill.settings\n"
        "importlib.import_module('shelve')\napp(value_serializer='pickle')\n"
        "import json\nfrom orjson import loads\n"
    )
    assert len(unsafe_uses(sample)) == 5


def test_no_module_of_the_worker_imports_or_names_a_pickle_codec() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 50, "the package was found"
    offenders = {
        str(path.relative_to(PACKAGE)): uses
        for path in sources
        if (uses := unsafe_uses(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_every_faust_topic_table_and_agent_of_the_app_is_raw_bytes(tmp_path: Path) -> None:
    settings = settings_under(
        tmp_path, security=SecuritySettings(master_key=SecretStr(new_master_key()))
    )
    app = build_app(settings).faust
    assert (app.conf.key_serializer, app.conf.value_serializer) == ("raw", "raw")
    tables = list(app.tables.values())
    assert {table.name for table in tables} >= {"cache-entries", "reference-products"}
    for table in tables:
        changelog = table.changelog_topic
        serializers = (table.key_serializer, table.value_serializer)
        assert serializers == ("raw", "raw"), table.name
        assert (changelog.key_serializer, changelog.value_serializer) == serializers
    channels = [*app.topics, *(agent.channel for agent in app.agents.values())]
    assert channels
    for channel in channels:
        assert (channel.key_serializer, channel.value_serializer) == ("raw", "raw"), channel
