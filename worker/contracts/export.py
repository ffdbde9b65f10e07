"""JSON Schema files generated from the models: the contracts producers and consumers use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from worker.cache.invalidation import Invalidation
from worker.contracts.request import RequestEnvelope
from worker.contracts.response import ResponseEnvelope
from worker.operations.registry import OperationRegistry
from worker.reference.base import ProductRecord, RateRecord

_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _schema(model: type[BaseModel], title: str, mode: str = "validation") -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
    return {"$schema": _SCHEMA_DIALECT, **schema, "title": title}


def contract_schemas(registry: OperationRegistry) -> dict[str, dict[str, Any]]:
    """File name (relative to ``schemas/``) -> JSON Schema, for every contract."""
    files = {
        "request.schema.json": _schema(RequestEnvelope, "Request"),
        "response.schema.json": _schema(ResponseEnvelope, "Response", mode="serialization"),
        "invalidation.schema.json": _schema(Invalidation, "Cache invalidation"),
        "reference/product.schema.json": _schema(ProductRecord, "Product"),
        "reference/rate.schema.json": _schema(RateRecord, "Exchange rate"),
    }
    for operation in registry:
        base = f"operations/{operation.name}.v{operation.version}"
        files[f"{base}.params.schema.json"] = _schema(
            operation.params_model, f"{operation.name} params"
        )
        files[f"{base}.result.schema.json"] = _schema(
            operation.result_model, f"{operation.name} result", mode="serialization"
        )
    return files


def render(schema: dict[str, Any]) -> bytes:
    """The committed form of a schema file: sorted keys, two-space indent, final newline."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def drift(directory: Path, registry: OperationRegistry) -> list[str]:
    """The schema files under ``directory`` that differ from the models (or are missing/stale)."""
    expected = {name: render(schema) for name, schema in contract_schemas(registry).items()}
    problems = []
    for name, content in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_bytes() != content:
            problems.append(f"{name}: differs from the models")
    for path in sorted(directory.rglob("*.schema.json")):
        name = path.relative_to(directory).as_posix()
        if name not in expected:
            problems.append(f"{name}: no model produces it")
    return problems


def write(directory: Path, registry: OperationRegistry) -> list[Path]:
    """Write every schema file; return the paths written."""
    written = []
    for name, schema in contract_schemas(registry).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(schema))
        written.append(path)
    return written
