"""Prediction endpoints: correct answers and every class of bad input."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.schemas import ARROW_STREAM
from ml.predict import predict_latest, predict_proba_features
from ml.registry import ModelManifest, load_model
from tests.api.conftest import api_settings, features_of, install_model
from tests.factories import make_ohlcv


def _reference_proba(client: TestClient, manifest: ModelManifest, rows: list[dict]) -> np.ndarray:
    settings = client.app.state.settings
    artifact = load_model(settings.ml.registry_dir, manifest.model_id)
    frame = pd.DataFrame(rows)[manifest.feature_names]
    return predict_proba_features(artifact, frame)


def _arrow_body(frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


JSON = "application/json"


def _detail_text(response) -> str:
    return json.dumps(response.json()["detail"])


# ------------------------------------------------------------------------------ /predict
def test_predict_matches_the_model(client: TestClient, manifest: ModelManifest) -> None:
    features = features_of(manifest, rsi=71.5)
    response = client.post("/predict", json={"features": features})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = float(_reference_proba(client, manifest, [features])[0])
    assert body["proba_up"] == pytest.approx(expected, abs=1e-12)
    assert body["direction"] == ("UP" if expected >= manifest.threshold else "DOWN")
    assert body["model_id"] == manifest.model_id
    assert body["threshold"] == manifest.threshold
    assert (body["symbol"], body["timeframe"]) == ("BTC/USDT", "1h")


@pytest.mark.parametrize(
    ("raw_value", "problem"),
    [
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        ('"abc"', "JSON number"),
        ('"1.5"', "JSON number"),
        ("true", "JSON number"),
        ("null", "JSON number"),
        ("1e999", "finite"),
    ],
)
def test_predict_rejects_non_finite_and_non_numbers(
    client: TestClient, manifest: ModelManifest, raw_value: str, problem: str
) -> None:
    features = features_of(manifest)
    body = json.dumps({"features": features}).replace(
        f'"rsi": {json.dumps(features["rsi"])}', f'"rsi": {raw_value}'
    )
    assert raw_value in body
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["body", "features", "rsi"]
    assert "features.rsi" in detail[0]["msg"] and problem in detail[0]["msg"]


def test_predict_names_missing_and_unknown_features(
    client: TestClient, manifest: ModelManifest
) -> None:
    features = features_of(manifest, moon_phase=0.3)
    del features["rsi"]
    response = client.post("/predict", json={"features": features})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "missing ['rsi']" in detail and "unknown ['moon_phase']" in detail


def test_predict_rejects_unknown_body_fields_and_bad_json(client: TestClient) -> None:
    extra = client.post("/predict", json={"features": {}, "debug": True})
    assert extra.status_code == 422 and "debug" in _detail_text(extra)
    broken = client.post(
        "/predict", content=b'{"features": {', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 422 and "JSON" in _detail_text(broken)


def test_predict_unknown_pair_is_404_and_bad_timeframe_is_422(
    client: TestClient, manifest: ModelManifest
) -> None:
    body = {"features": features_of(manifest)}
    unknown = client.post("/predict", params={"symbol": "DOGE/EUR"}, json=body)
    assert unknown.status_code == 404
    assert (
        "DOGE/EUR 1h" in unknown.json()["detail"] and "configured pairs" in unknown.json()["detail"]
    )
    bad_timeframe = client.post("/predict", params={"timeframe": "7m"}, json=body)
    assert bad_timeframe.status_code == 422 and "timeframe" in _detail_text(bad_timeframe)
    bad_symbol = client.post("/predict", params={"symbol": "BTCUSDT"}, json=body)
    assert bad_symbol.status_code == 422 and "symbol" in _detail_text(bad_symbol)


def test_predict_without_a_model_is_503_saying_how_to_train(tmp_path) -> None:
    with TestClient(create_app(api_settings(tmp_path))) as fresh:
        response = fresh.post("/predict", json={"features": {"rsi": 50.0}})
        features = fresh.get("/features")
    assert response.status_code == 503
    assert "no current model for BTC/USDT 1h" in response.json()["detail"]
    assert "cryptopred train --symbol BTC/USDT --timeframe 1h" in response.json()["detail"]
    assert features.status_code == 503


# ------------------------------------------------------------------------------ /predict/batch
def test_batch_returns_rows_in_order(client: TestClient, manifest: ModelManifest) -> None:
    rows = [features_of(manifest, rsi=float(v)) for v in (5, 50, 95)]
    rows[1]["log_return_1"] = 0.03
    response = client.post("/predict/batch", json={"rows": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = _reference_proba(client, manifest, rows)
    assert body["count"] == 3 and body["model_id"] == manifest.model_id
    got = [item["proba_up"] for item in body["predictions"]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert [item["direction"] for item in body["predictions"]] == [
        "UP" if p >= manifest.threshold else "DOWN" for p in expected
    ]


def test_batch_accepts_an_arrow_stream(client: TestClient, manifest: ModelManifest) -> None:
    rows = [features_of(manifest, rsi=float(v)) for v in range(10, 90, 10)]
    frame = pd.DataFrame(rows)[list(reversed(manifest.feature_names))]  # column order is free
    response = client.post(
        "/predict/batch", content=_arrow_body(frame), headers={"Content-Type": ARROW_STREAM}
    )
    assert response.status_code == 200, response.text
    expected = _reference_proba(client, manifest, rows)
    got = [item["proba_up"] for item in response.json()["predictions"]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_batch_answers_in_arrow_when_asked(client: TestClient, manifest: ModelManifest) -> None:
    rows = [features_of(manifest, rsi=float(v)) for v in (20, 40, 60)]
    response = client.post("/predict/batch", json={"rows": rows}, headers={"Accept": ARROW_STREAM})
    assert response.status_code == 200
    assert response.headers["content-type"] == ARROW_STREAM
    table = pa.ipc.open_stream(pa.py_buffer(response.content)).read_all()
    expected = _reference_proba(client, manifest, rows)
    np.testing.assert_allclose(table.column("proba_up").to_numpy(), expected, atol=1e-12)
    directions = table.column("direction").to_pylist()
    assert directions == ["UP" if p >= manifest.threshold else "DOWN" for p in expected]
    metadata = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert metadata["model_id"] == manifest.model_id and metadata["count"] == "3"


def test_batch_arrow_rejects_nan_nulls_strings_and_garbage(
    client: TestClient, manifest: ModelManifest
) -> None:
    frame = pd.DataFrame([features_of(manifest)] * 3)
    frame.loc[2, "rsi"] = np.nan  # pandas NaN becomes an Arrow null
    headers = {"Content-Type": ARROW_STREAM}
    null = client.post("/predict/batch", content=_arrow_body(frame), headers=headers)
    assert null.status_code == 422 and "rows[2].rsi is null" in null.json()["detail"]
    columns = {name: pa.array(frame[name].to_numpy(), from_pandas=False) for name in frame}
    table = pa.table({**columns, "rsi": pa.array([1.0, np.inf, np.nan], from_pandas=False)})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    inf = client.post("/predict/batch", content=sink.getvalue(), headers=headers)
    assert inf.status_code == 422 and "rows[1].rsi must be a finite number" in inf.json()["detail"]
    text = pd.DataFrame([features_of(manifest)]).astype({"rsi": str})
    strings = client.post("/predict/batch", content=_arrow_body(text), headers=headers)
    assert strings.status_code == 422 and "'rsi'" in strings.json()["detail"]
    garbage = client.post("/predict/batch", content=b"not arrow at all", headers=headers)
    assert garbage.status_code == 422 and "Arrow IPC stream" in garbage.json()["detail"]


@pytest.mark.parametrize(
    ("rows", "status", "text"),
    [
        ([], 422, "rows"),
        ([{"rsi": "abc"}], 422, "rows.0.rsi must be a JSON number"),
    ],
)
def test_batch_rejects_empty_and_strings(
    client: TestClient, rows: list, status: int, text: str
) -> None:
    response = client.post("/predict/batch", json={"rows": rows})
    assert response.status_code == status
    assert text in _detail_text(response)


def test_batch_names_the_row_with_a_missing_feature(
    client: TestClient, manifest: ModelManifest
) -> None:
    rows = [features_of(manifest), features_of(manifest)]
    del rows[1]["atr_ratio"]
    response = client.post("/predict/batch", json={"rows": rows})
    assert response.status_code == 422
    assert (
        "rows[1]" in response.json()["detail"]
        and "missing ['atr_ratio']" in response.json()["detail"]
    )


def test_batch_nan_literal_is_rejected_by_name(client: TestClient, manifest: ModelManifest) -> None:
    body = json.dumps({"rows": [features_of(manifest, rsi=1.0)]}).replace(
        '"rsi": 1.0', '"rsi": NaN'
    )
    response = client.post(
        "/predict/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "rows", 0, "rsi"]


def test_batch_over_the_limit_is_422(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path, api={"max_batch_rows": 5})
    manifest = install_model(trained_registry, settings)
    with TestClient(create_app(settings)) as small:
        over = small.post("/predict/batch", json={"rows": [features_of(manifest)] * 6})
        limit = small.post("/predict/batch", json={"rows": [features_of(manifest)] * 5})
    assert over.status_code == 422
    assert "6 rows is over the limit of 5 (api.max_batch_rows)" in over.json()["detail"]
    assert limit.status_code == 200


def test_batch_other_media_types_are_415(client: TestClient) -> None:
    response = client.post("/predict/batch", content=b"a,b", headers={"Content-Type": "text/csv"})
    assert response.status_code == 415 and "text/csv" in response.json()["detail"]


# ------------------------------------------------------------------------------ /predict/candles
def _rows(candles: pd.DataFrame) -> list[list]:
    stamps = candles.index.as_unit("ms").asi8.tolist()
    return [[ts, *values] for ts, values in zip(stamps, candles.to_numpy().tolist(), strict=True)]


def test_candles_predict_like_predict_latest(client: TestClient, manifest: ModelManifest) -> None:
    candles = make_ohlcv(600, start="2024-01-01", seed=3)
    response = client.post(
        "/predict/candles",
        json={"symbol": "BTC/USDT", "timeframe": "1h", "candles": _rows(candles)},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    settings = client.app.state.settings
    expected = predict_latest(load_model(settings.ml.registry_dir, manifest.model_id), candles)
    assert body["proba_up"] == pytest.approx(expected.proba_up, abs=1e-12)
    assert pd.Timestamp(body["candle_open"]) == candles.index[-1]
    assert body["dropped_forming_candle"] is False and body["candles_used"] == 600


def test_candles_drop_the_forming_candle(client: TestClient) -> None:
    now = pd.Timestamp.now(tz="UTC").floor("h")
    candles = make_ohlcv(500, start=now - pd.Timedelta(hours=499), seed=4)  # last one is forming
    response = client.post("/predict/candles", json={"candles": _rows(candles)})
    assert response.status_code == 200, response.text
    assert response.json()["dropped_forming_candle"] is True
    assert pd.Timestamp(response.json()["candle_open"]) == candles.index[-2]


@pytest.mark.parametrize(
    ("mutate", "text"),
    [
        (lambda rows: rows[:100], "needs at least"),
        (lambda rows: rows[:200] + rows[201:], "not contiguous"),
        (lambda rows: [rows[0], *rows[2:], rows[1]], "out of order"),
        (lambda rows: [*rows[:-1], [rows[-1][0], 10.0, 5.0, 20.0, 10.0, 1.0]], "high_below_low"),
        (lambda rows: [*rows[:-1], [rows[-1][0] + 1, *rows[-1][1:]]], "grid"),
    ],
)
def test_candles_bad_data_is_422_with_the_reason(client: TestClient, mutate, text: str) -> None:
    rows = mutate(_rows(make_ohlcv(600, start="2024-01-01", seed=3)))
    response = client.post("/predict/candles", json={"candles": rows})
    assert response.status_code == 422
    assert text in response.json()["detail"]


def test_candles_schema_rejects_strings_and_nan(client: TestClient) -> None:
    rows = _rows(make_ohlcv(3, start="2024-01-01"))
    rows[1][4] = "abc"
    strings = client.post("/predict/candles", json={"candles": rows})
    assert strings.status_code == 422 and "candles.1.4" in _detail_text(strings)
    rows = _rows(make_ohlcv(3, start="2024-01-01"))
    rows[2][5] = 123.25
    body = json.dumps({"candles": rows}).replace("123.25", "NaN")
    nan = client.post(
        "/predict/candles", content=body, headers={"Content-Type": "application/json"}
    )
    assert nan.status_code == 422
    assert nan.json()["detail"][0]["loc"] == ["body", "candles", 2, 5]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "text"),
    [
        (b'{"candles": [', JSON, 422, "EOF while parsing a list at line 1 column 13"),
        (b'{"symbol": "\xff"}', JSON, 422, "invalid unicode code point at line 1 column 13"),
        (b"[" * 5000, JSON, 422, "recursion limit exceeded at line 1 column 202"),
        (b"{}", "text/plain", 415, "content-type 'text/plain' is not supported"),
    ],
    ids=["truncated", "bad-utf-8", "deep-nesting", "text-plain"],
)
def test_candles_parse_errors_match_predict(
    client: TestClient, body: bytes, content_type: str, status: int, text: str
) -> None:
    headers = {"Content-Type": content_type}
    candles = client.post("/predict/candles", content=body, headers=headers)
    predict = client.post("/predict", content=body, headers=headers)
    assert (candles.status_code, candles.json()) == (predict.status_code, predict.json())
    assert candles.status_code == status and text in _detail_text(candles)
