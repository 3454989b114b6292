"""The OpenAPI document: every endpoint has an example; fuzzing it finds no server error."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from schemathesis.specs.openapi.media_types import unregister_all as unregister_media_types

from api import schemas
from api.app import create_app
from api.schemas import ARROW_STREAM
from ml.registry import ModelManifest
from tests.api.arrow_bodies import HOSTILE_BODIES, arrow_stream

EXPECTED_OPERATIONS = {
    ("get", "/health"),
    ("get", "/features"),
    ("get", "/model/info"),
    ("post", "/predict"),
    ("post", "/predict/batch"),
    ("post", "/predict/candles"),
    ("get", "/predictions"),
    ("get", "/accuracy"),
    ("get", "/paper"),
    ("get", "/backtests"),
    ("get", "/backtests/{run_id}"),
    ("get", "/backtests/{run_id}/report"),
    ("post", "/models/{model_id}/promote"),
}


def _resolve(document: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    if ref:
        return document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def _has_example(document: dict, operation: dict) -> bool:
    bodies = operation.get("requestBody", {}).get("content", {}).values()
    responses = operation["responses"].get("200", operation["responses"].get("307", {}))
    contents = [
        *bodies,
        *responses.get("content", {}).values(),
        *responses.get("headers", {}).values(),
    ]
    return any(
        "example" in content
        or "examples" in content
        or "examples" in _resolve(document, content.get("schema", {}))
        for content in contents
    )


def _models_with_examples() -> list[type[BaseModel]]:
    return [
        model
        for model in vars(schemas).values()
        if isinstance(model, type)
        and issubclass(model, BaseModel)
        and "examples" in (model.model_config.get("json_schema_extra") or {})
    ]


@pytest.mark.parametrize("model", _models_with_examples(), ids=lambda model: model.__name__)
def test_documented_examples_are_valid(model: type[BaseModel]) -> None:
    for example in model.model_config["json_schema_extra"]["examples"]:
        model.model_validate_json(json.dumps(example))


def test_openapi_lists_every_endpoint_with_an_example(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operations = {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == EXPECTED_OPERATIONS
    missing = [
        key for key, operation in operations.items() if not _has_example(document, operation)
    ]
    assert missing == []
    batch = operations[("post", "/predict/batch")]["requestBody"]["content"]
    assert set(batch) == {"application/json", "application/vnd.apache.arrow.stream"}
    assert client.get("/docs").status_code == 200


OVERSIZED_CURSORS = (
    base64.urlsafe_b64encode(b"9223372036854775808:1").decode().rstrip("="),  # > int64: was a 500
    base64.urlsafe_b64encode(f"1:{10**30}".encode()).decode().rstrip("="),
    "A" * 10_000,
)


def _arrow_bodies(manifest: ModelManifest) -> st.SearchStrategy[bytes]:
    """What the fuzzer sends as Arrow: random batches (plain, zstd, lz4), hostile bodies, noise."""
    batches = st.builds(
        _random_stream,
        st.just(manifest.feature_names),
        n_rows=st.integers(1, 50),
        compression=st.sampled_from([None, "zstd", "lz4"]),
        seed=st.integers(0, 2**32 - 1),
    )
    hostile = st.sampled_from([make(manifest) for make in HOSTILE_BODIES])
    return st.one_of(batches, hostile, st.binary(max_size=256))


def _random_stream(names: list[str], *, n_rows: int, compression: str | None, seed: int) -> bytes:
    values = np.random.default_rng(seed).normal(size=(len(names), n_rows))
    batch = pa.record_batch([pa.array(column) for column in values], names=names)
    return arrow_stream([batch], compression=compression)


@pytest.fixture
def arrow_media_type(served) -> Iterator[None]:
    """Schemathesis generates `/predict/batch` Arrow bodies with `_arrow_bodies` meanwhile."""
    schemathesis.openapi.media_type(ARROW_STREAM, _arrow_bodies(served[1]))
    yield
    unregister_media_types()


def test_openapi_names_the_probability_proba_up_everywhere(client: TestClient) -> None:
    """One public name, as in the webhook, the database and the charts."""
    text = json.dumps(client.get("/openapi.json").json())
    assert '"proba_up"' in text
    assert "probability_up" not in text


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_fuzzing_finds_no_server_error(served, arrow_media_type, mode) -> None:
    # Schemathesis' hypothesis strategies per operation, driven directly: its pytest
    # integration (`from_fixture`) fails on pytest 9 ('Function' has no attribute '_nodeid').
    app = create_app(served[0])
    with TestClient(app):  # run the lifespan (schema migrations) once
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == len(EXPECTED_OPERATIONS)
        for operation in operations:
            _fuzz(operation, mode)
            for case in _known_attacks(operation, served[1]):
                _check(case)


def _known_attacks(operation, manifest: ModelManifest) -> list:
    """Cases the generator is unlikely to find: compressed-Arrow bombs, int64-overflow cursors."""
    if operation.path == "/predict/batch":
        return [
            operation.Case(body=make(manifest), media_type=ARROW_STREAM) for make in HOSTILE_BODIES
        ]
    if operation.path == "/predictions":
        return [operation.Case(query={"cursor": cursor}) for cursor in OVERSIZED_CURSORS]
    return []


def _fuzz(operation, mode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def check(case) -> None:
        _check(case)

    check()


def _check(case) -> None:
    response = case.call()
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{where}: {response.text[:300]}"
    assert "Traceback" not in response.text
