from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import DataValidationError, FeatureMismatchError, NotEnoughDataError
from core.settings import MLSettings
from ml.dataset import make_dataset
from ml.features import warmup_bars
from ml.predict import predict_history, predict_latest, predict_many, predict_proba_features
from ml.registry import ModelArtifact, ModelManifest, load_model, save_model
from tests.factories import make_ohlcv


def _artifact(ohlcv, cfg: MLSettings) -> ModelArtifact:
    dataset = make_dataset(ohlcv, cfg)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    estimator.fit(dataset.X, dataset.y)
    manifest = ModelManifest(
        model_id="BTC_USDT-1h-logreg-20210101T0000Z",
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        algorithm="logreg",
        params={},
        feature_names=list(dataset.X.columns),
        feature_config=cfg.features.model_dump(mode="json"),
        feature_config_hash="x",
        labels=cfg.labels.model_dump(mode="json"),
        threshold=0.5,
        train_start=datetime(2021, 1, 1, tzinfo=UTC),
        train_end=datetime(2021, 2, 1, tzinfo=UTC),
        n_train_rows=len(dataset.X),
        candles_sha256="0" * 64,
        created_at=datetime(2021, 2, 1, tzinfo=UTC),
    )
    return ModelArtifact(estimator=estimator, manifest=manifest)


@pytest.fixture(scope="module")
def trained():
    ohlcv = make_ohlcv(2000, seed=7)
    return ohlcv, _artifact(ohlcv.iloc[:1500], MLSettings())


def test_predict_latest_equals_history_path(trained) -> None:
    ohlcv, artifact = trained
    history = predict_history(artifact, ohlcv)
    needed = warmup_bars(MLSettings().features)
    for end in (1600, 1800, 2000):
        latest = predict_latest(artifact, ohlcv.iloc[:end])
        assert latest.candle_open == ohlcv.index[end - 1]
        assert latest.proba_up == pytest.approx(history.loc[latest.candle_open], rel=1e-9)
        assert latest.candle_close - latest.candle_open == (ohlcv.index[1] - ohlcv.index[0])
    assert not history.isna().any()
    assert history.index[0] < ohlcv.index[needed]  # complete features start within the warm-up


def test_predict_many_records_equal_history_and_latest(trained) -> None:
    ohlcv, artifact = trained
    window = ohlcv.iloc[:1800]
    since = window.index[-40]
    records = predict_many(artifact, window, since=since)
    history = predict_history(artifact, window)
    assert [r.candle_open for r in records] == list(window.index[-40:])
    assert [r.proba_up for r in records] == history.loc[since:].tolist()  # same maths, exactly
    assert {r.direction for r in records} == {"UP", "DOWN"}
    for record in records:
        assert record.direction == (
            "UP" if record.proba_up >= artifact.manifest.threshold else "DOWN"
        )
    latest = predict_latest(artifact, window)
    assert records[-1].proba_up == pytest.approx(latest.proba_up, rel=1e-9)
    needed = warmup_bars(MLSettings().features)
    # predict_latest is predict_many's last record over the warm-up window, field for field
    assert predict_many(artifact, window.iloc[-needed:], since=window.index[-1]) == (latest,)


def test_predict_many_leaves_out_incomplete_features(trained) -> None:
    ohlcv, artifact = trained
    records = predict_many(artifact, ohlcv.iloc[:300])
    history = predict_history(artifact, ohlcv.iloc[:300])
    assert len(records) == len(history) < 300  # the warm-up rows have no record
    assert records[0].candle_open == history.index[0]
    assert predict_many(artifact, ohlcv.iloc[:5]) == ()


def test_predict_latest_needs_warmup(trained) -> None:
    ohlcv, artifact = trained
    with pytest.raises(NotEnoughDataError, match="needs at least"):
        predict_latest(artifact, ohlcv.iloc[:50])


def test_predict_proba_features_rejects_bad_columns_and_values(trained) -> None:
    ohlcv, artifact = trained
    features = make_dataset(ohlcv, MLSettings()).X.iloc[:5]
    with pytest.raises(FeatureMismatchError):
        predict_proba_features(artifact, features.drop(columns=features.columns[0]))
    broken = features.copy()
    broken.iloc[2, 3] = np.inf
    with pytest.raises(DataValidationError, match=features.columns[3]):
        predict_proba_features(artifact, broken)


def test_predict_after_registry_round_trip(trained, tmp_path: Path) -> None:
    ohlcv, artifact = trained
    loaded = load_model(tmp_path, save_model(artifact, tmp_path))
    assert predict_latest(loaded, ohlcv).proba_up == predict_latest(artifact, ohlcv).proba_up
