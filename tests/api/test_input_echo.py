"""Errors about a huge input stay small: the response and every log line are bounded (issue 14,
defect 3: 300,000 unknown keys gave a 3.6 MB 422 and a 3.6 MB log line; 300,000 string values a
46 MB 422)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from api.schemas import ARROW_STREAM
from ml.registry import ModelManifest
from tests.api.conftest import features_of

N_KEYS = 20_000
MAX_RESPONSE_BYTES = 4_000
MAX_LOG_LINE_CHARS = 2_000
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON = "application/json"

Request = tuple[str, bytes, str]
"""(path, body, content type) of one hostile request."""


def _json(path: str, payload: object) -> Request:
    return path, json.dumps(payload).encode(), JSON


def _unknown_keys(manifest: ModelManifest) -> Request:
    unknown = {f"x{i:07d}": 1.0 for i in range(N_KEYS)}
    return _json("/predict", {"features": {**features_of(manifest), **unknown}})


def _string_values(manifest: ModelManifest) -> Request:
    strings = {f"x{i:07d}": "a" for i in range(N_KEYS)}
    return _json("/predict", {"features": {**features_of(manifest), **strings}})


def _one_long_key(manifest: ModelManifest) -> Request:
    return _json("/predict", {"features": {**features_of(manifest), "k" * 1_000_000: 1.0}})


def _batch_row_keys(manifest: ModelManifest) -> Request:
    row = {**features_of(manifest), **{f"x{i:07d}": 1.0 for i in range(N_KEYS)}}
    return _json("/predict/batch", {"rows": [features_of(manifest), row]})


def _batch_strings(manifest: ModelManifest) -> Request:
    return _json("/predict/batch", {"rows": [{"rsi": "a"}] * N_KEYS})


def _arrow_columns(manifest: ModelManifest) -> Request:
    names = [*manifest.feature_names, *(f"x{i:07d}" for i in range(20_000))]
    batch = pa.record_batch([pa.array([1.0])] * len(names), names=names)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return "/predict/batch", sink.getvalue(), ARROW_STREAM


def _bad_candles(manifest: ModelManifest) -> Request:
    return _json("/predict/candles", {"candles": ["x"] * N_KEYS})


def _long_media_type(manifest: ModelManifest) -> Request:
    return "/predict", b"{}", "text/" + "x" * N_KEYS


@pytest.mark.parametrize(
    "make_request",
    [
        _unknown_keys,
        _string_values,
        _one_long_key,
        _batch_row_keys,
        _batch_strings,
        _arrow_columns,
        _bad_candles,
        _long_media_type,
    ],
)
def test_errors_about_huge_inputs_are_bounded(
    client: TestClient,
    manifest: ModelManifest,
    caplog: pytest.LogCaptureFixture,
    make_request: Callable[[ModelManifest], Request],
) -> None:
    path, body, content_type = make_request(manifest)
    with caplog.at_level(logging.DEBUG):
        response = client.post(path, content=body, headers={"Content-Type": content_type})
    assert response.status_code in (415, 422), response.text[:300]
    assert len(response.content) <= MAX_RESPONSE_BYTES, f"{len(response.content):,} bytes"
    formatter = logging.Formatter(LOG_FORMAT)
    longest = max((len(formatter.format(record)) for record in caplog.records), default=0)
    assert longest <= MAX_LOG_LINE_CHARS, f"a {longest:,}-character log line"


def test_bounded_errors_still_name_the_first_offenders_and_count_the_rest(
    client: TestClient, manifest: ModelManifest
) -> None:
    _, body, _ = _unknown_keys(manifest)
    unknown = client.post("/predict", content=body, headers={"Content-Type": JSON})
    assert "unknown ['x0000000', 'x0000001'," in unknown.json()["detail"]
    assert "...(+19,990 more)]" in unknown.json()["detail"]
    _, body, _ = _string_values(manifest)
    strings = client.post("/predict", content=body, headers={"Content-Type": JSON}).json()
    assert [error["loc"] for error in strings["detail"][:2]] == [
        ["body", "features", "x0000000"],
        ["body", "features", "x0000001"],
    ]
    assert strings["detail"][-1]["msg"].startswith("...(+19,990 more) invalid field(s)")
