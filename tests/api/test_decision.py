"""Direction and action, separately, in every prediction the API shows: the model's UP/DOWN
call and what the traded decision policy does (and which policy that is)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.schemas import ARROW_STREAM
from core.settings import DecisionPolicy, Settings
from ml.decision import ACTIONS, actions_from_flat, positions_from_proba
from ml.predict import predict_history, predict_proba_features, required_candles
from ml.registry import MANIFEST_FILE, ModelManifest, ValidatedPolicy, load_model, read_manifest
from storage.db import init_db, make_engine, make_session_factory, session_scope
from storage.repository import NewPrediction, insert_predictions
from tests.api.conftest import api_settings, features_of, install_model, seed_database
from tests.factories import make_ohlcv

RSI_VALUES = (5.0, 30.0, 50.0, 70.0, 95.0)


def _rows(manifest: ModelManifest) -> list[dict[str, float]]:
    return [features_of(manifest, rsi=value) for value in RSI_VALUES]


def _reference(settings: Settings, manifest: ModelManifest, rows: list[dict]) -> np.ndarray:
    artifact = load_model(settings.ml.registry_dir, manifest.model_id)
    return predict_proba_features(artifact, pd.DataFrame(rows)[manifest.feature_names])


def _policy_between(proba: np.ndarray) -> DecisionPolicy:
    """Entry between the probabilities (some rows LONG, some FLAT), proba sizing below 1."""
    ordered = np.sort(proba)
    return DecisionPolicy(
        entry_threshold=float(ordered[2:4].mean()),
        exit_threshold=float(ordered[1:3].mean()),
        min_hold_bars=3,
        sizing="proba",
        edge_scale=0.5 / float(np.max(np.abs(2 * proba - 1))),
    )


def _validate(settings: Settings, manifest: ModelManifest, policy: DecisionPolicy) -> None:
    root = settings.ml.registry_dir
    validated = ValidatedPolicy(
        policy=policy,
        chosen_by="nested walk-forward, net log growth",
        n_candidates=37,
        nested_net_return=0.42,
        nested_buy_and_hold_return=0.55,
        deflated_sharpe=0.61,
        probability_of_overfitting=0.31,
    )
    updated = read_manifest(root, manifest.model_id).model_copy(update={"decision": validated})
    (root / manifest.model_id / MANIFEST_FILE).write_text(updated.model_dump_json())


@pytest.fixture
def validated(
    tmp_path: Path, trained_registry: Path
) -> Iterator[tuple[TestClient, ModelManifest, DecisionPolicy]]:
    """A served model whose manifest holds a validated policy, and a seeded database."""
    settings = api_settings(tmp_path)
    manifest = install_model(trained_registry, settings)
    policy = _policy_between(_reference(settings, manifest, _rows(manifest)))
    _validate(settings, manifest, policy)
    seed_database(settings, manifest.model_id)
    with TestClient(create_app(settings)) as client:
        yield client, manifest, policy


def test_predict_shows_the_direction_and_the_action_from_flat(validated) -> None:
    client, manifest, policy = validated
    settings = client.app.state.settings
    rows = _rows(manifest)
    proba = _reference(settings, manifest, rows)
    sides, sizes = actions_from_flat(proba, policy)
    assert set(sides.tolist()) == {0, 1}  # the thresholds split the rows
    for features, p, side, size in zip(rows, proba, sides, sizes, strict=True):
        body = client.post("/predict", json={"features": features}).json()
        assert body["proba_up"] == pytest.approx(p, abs=1e-12)
        assert body["direction"] == ("UP" if p >= manifest.threshold else "DOWN")
        assert (body["action"], body["size"]) == (ACTIONS[int(side)], pytest.approx(size))
        assert body["policy"]["source"] == "manifest"
        assert body["policy"]["rule"] == policy.model_dump(mode="json")
        assert body["policy"]["description"].startswith(
            f"long at p_up >= {policy.entry_threshold:.2f}"
        )


def test_batch_json_and_arrow_carry_the_actions(validated) -> None:
    client, manifest, policy = validated
    rows = _rows(manifest)
    proba = _reference(client.app.state.settings, manifest, rows)
    sides, sizes = actions_from_flat(proba, policy)
    actions = [ACTIONS[int(side)] for side in sides]
    body = client.post("/predict/batch", json={"rows": rows}).json()
    assert [item["action"] for item in body["predictions"]] == actions
    np.testing.assert_allclose([item["size"] for item in body["predictions"]], sizes)
    assert body["policy"]["source"] == "manifest"
    response = client.post("/predict/batch", json={"rows": rows}, headers={"Accept": ARROW_STREAM})
    table = pa.ipc.open_stream(pa.py_buffer(response.content)).read_all()
    assert table.column("action").to_pylist() == actions
    np.testing.assert_allclose(table.column("size").to_numpy(), sizes)
    metadata = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert json.loads(metadata["policy"])["rule"] == policy.model_dump(mode="json")
    assert float(metadata["threshold"]) == manifest.threshold


def test_candles_action_is_the_policy_over_the_posted_history(validated) -> None:
    client, manifest, _policy = validated
    settings = client.app.state.settings
    artifact = load_model(settings.ml.registry_dir, manifest.model_id)
    candles = make_ohlcv(600, start="2024-01-01", seed=3)
    history = predict_history(artifact, candles).iloc[required_candles(artifact) - 1 - 600 :]
    # a policy that trades on these candles, with a minimum hold and a cooldown
    low, high = np.quantile(history.to_numpy(), [0.4, 0.6])
    policy = DecisionPolicy(
        entry_threshold=high, exit_threshold=low, min_hold_bars=5, cooldown_bars=4
    )
    _validate(settings, manifest, policy)
    client.app.state.models.forget(manifest.symbol, manifest.timeframe)
    expected = positions_from_proba(history.to_numpy(), policy)
    assert len(set(expected.side.tolist())) == 2
    stamps = candles.index.as_unit("ms").asi8.tolist()
    for end in (len(candles) - 7, len(candles)):
        rows = [[ts, *v] for ts, v in zip(stamps[:end], candles.to_numpy().tolist(), strict=False)]
        body = client.post("/predict/candles", json={"candles": rows}).json()
        state = positions_from_proba(history.to_numpy()[: end - 600 or None], policy).final_state
        assert (body["action"], body["size"]) == (ACTIONS[state.side], state.size)
        assert body["bars_held"] == (state.bars_held if state.side else 0)
        assert body["policy"]["source"] == "manifest"


def _add_prediction(settings: Settings, manifest: ModelManifest, **values) -> None:
    engine = make_engine(settings.storage.db_url)
    init_db(engine)
    open_ms = int(pd.Timestamp.now(tz="UTC").floor("h").value // 1_000_000) - 3_600_000
    row = NewPrediction(
        exchange="binance", symbol="BTC/USDT", timeframe="1h", candle_open_ms=open_ms,
        target_close_ms=open_ms + 7_200_000, horizon_bars=1, proba_up=0.47, direction="DOWN",
        threshold=0.5, model_id=manifest.model_id, created_ms=open_ms + 3_605_000,
        latency_ms=5.0, **values,
    )  # fmt: skip
    with session_scope(make_session_factory(engine)) as session:
        insert_predictions(session, [row])
    engine.dispose()


def test_logged_predictions_show_direction_action_size_and_policy(validated) -> None:
    client, manifest, _policy = validated
    _add_prediction(
        client.app.state.settings, manifest, signal=1, size=0.5, policy_source="manifest"
    )
    items = client.get("/predictions", params={"limit": 2}).json()["items"]
    newest, older = items
    assert (newest["direction"], newest["action"], newest["size"]) == ("DOWN", "LONG", 0.5)
    assert (newest["signal"], newest["policy_source"]) == (1, "manifest")
    assert older["action"] == ACTIONS[older["signal"]]
    assert (older["size"], older["policy_source"]) == (None, None)  # logged before sizes


def test_dashboard_shows_direction_and_action_separately(validated) -> None:
    client, manifest, policy = validated
    _add_prediction(
        client.app.state.settings, manifest, signal=1, size=0.5, policy_source="manifest"
    )
    html = client.get("/").text
    card = re.search(r'<article class="signal.*?</article>', html, re.S)
    assert card is not None
    assert 'aria-label="direction DOWN"' in card.group(0) and "Model direction" in card.group(0)
    assert 'aria-label="action LONG"' in card.group(0) and "Policy action" in card.group(0)
    assert "50%" in card.group(0) and "policy manifest" in card.group(0)
    assert '<th scope="col">Direction</th>' in html and '<th scope="col">Action</th>' in html
    assert (
        f"Decision policy (manifest): <strong>long at p_up &gt;= {policy.entry_threshold:.2f}"
        in html
    )
    assert "among 37 candidates" in html and "deflated Sharpe 0.61" in html


def test_model_info_shows_the_traded_and_the_validated_policy(validated, tmp_path) -> None:
    client, manifest, policy = validated
    decision = client.get("/model/info").json()["decision"]
    assert (decision["source"], decision["rule"]) == ("manifest", policy.model_dump(mode="json"))
    assert decision["validated"]["n_candidates"] == 37
    assert decision["validated"]["probability_of_overfitting"] == 0.31
    settings = client.app.state.settings
    config = settings.decision.model_copy(update={"live_policy": "config"})
    overridden = settings.model_copy(update={"decision": config})
    with TestClient(create_app(overridden)) as other:
        decision = other.get("/model/info").json()["decision"]
        body = other.post("/predict", json={"features": features_of(manifest)}).json()
    assert decision["source"] == body["policy"]["source"] == "config"
    assert decision["rule"] == settings.decision.policy.model_dump(mode="json")
    assert decision["validated"]["policy"] == policy.model_dump(mode="json")  # still shown
