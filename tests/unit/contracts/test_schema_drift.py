"""The committed JSON Schema files must be exactly what the models generate."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from worker.contracts import RequestEnvelope, ResponseEnvelope
from worker.contracts.export import contract_schemas, drift, render, write
from worker.operations.registry import default_registry


@pytest.fixture
def schemas_dir(pytestconfig: pytest.Config) -> Path:
    return pytestconfig.rootpath / "schemas"


@pytest.fixture
def schemas_copy(schemas_dir: Path, tmp_path: Path) -> Path:
    """A copy of the committed schemas that a test may alter."""
    return Path(shutil.copytree(schemas_dir, tmp_path / "schemas"))


def test_the_committed_schemas_match_the_models(schemas_dir: Path) -> None:
    problems = drift(schemas_dir, default_registry())
    assert problems == [], "run `worker schemas export` and commit the result"


def test_every_contract_has_a_committed_file(schemas_dir: Path) -> None:
    expected = set(contract_schemas(default_registry()))
    committed = {p.relative_to(schemas_dir).as_posix() for p in schemas_dir.rglob("*.schema.json")}
    assert committed == expected
    assert {"request.schema.json", "response.schema.json"} <= expected
    assert "operations/price.quote.v1.params.schema.json" in expected


def test_an_altered_file_is_reported(schemas_copy: Path) -> None:
    path = schemas_copy / "operations" / "price.quote.v1.params.schema.json"
    schema = orjson.loads(path.read_bytes())
    schema["properties"]["quantity"]["maximum"] = 5
    path.write_bytes(render(schema))
    assert drift(schemas_copy, default_registry()) == [
        "operations/price.quote.v1.params.schema.json: differs from the models"
    ]


def test_a_formatting_change_alone_is_reported(schemas_copy: Path) -> None:
    path = schemas_copy / "response.schema.json"
    path.write_bytes(orjson.dumps(orjson.loads(path.read_bytes())))
    assert drift(schemas_copy, default_registry()) == [
        "response.schema.json: differs from the models"
    ]


def test_a_missing_file_and_a_stale_file_are_reported(schemas_copy: Path) -> None:
    (schemas_copy / "request.schema.json").unlink()
    (schemas_copy / "operations" / "price.quote.v0.params.schema.json").write_bytes(b"{}\n")
    assert drift(schemas_copy, default_registry()) == [
        "request.schema.json: missing",
        "operations/price.quote.v0.params.schema.json: no model produces it",
    ]


def test_written_schemas_have_no_drift(tmp_path: Path) -> None:
    written = write(tmp_path, default_registry())
    assert len(written) == len(contract_schemas(default_registry()))
    assert drift(tmp_path, default_registry()) == []
    assert all(path.read_bytes().endswith(b"}\n") for path in written)


def test_the_request_schema_is_strict_about_unknown_fields() -> None:
    schemas = contract_schemas(default_registry())
    request = schemas["request.schema.json"]
    assert request["additionalProperties"] is False
    assert set(request["required"]) == {
        name for name, field in RequestEnvelope.model_fields.items() if field.is_required()
    }
    assert set(schemas["response.schema.json"]["properties"]) == set(ResponseEnvelope.model_fields)
