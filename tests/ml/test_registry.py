import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.errors import FeatureMismatchError, ModelIntegrityError, ModelNotFoundError
from ml.registry import (
    ModelArtifact,
    ModelManifest,
    current_model_id,
    list_models,
    load_current_model,
    load_model,
    make_model_id,
    promote_model,
    save_model,
)

FEATURES = ["f1", "f2", "f3"]


def _artifact(model_id: str = "BTC_USDT-1h-logreg-20210101T0000Z") -> ModelArtifact:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=FEATURES)
    y = (X["f1"] + rng.normal(size=200) > 0).astype(int)
    estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    manifest = ModelManifest(
        model_id=model_id,
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        algorithm="logreg",
        params={"C": 1.0},
        feature_names=FEATURES,
        feature_config={},
        feature_config_hash="abc",
        labels={"horizon_bars": 1},
        threshold=0.5,
        train_start=datetime(2020, 1, 1, tzinfo=UTC),
        train_end=datetime(2021, 1, 1, tzinfo=UTC),
        n_train_rows=200,
        candles_sha256="0" * 64,
        created_at=datetime(2021, 1, 2, tzinfo=UTC),
    )
    return ModelArtifact(estimator=estimator, manifest=manifest)


def _X() -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(1).normal(size=(50, 3)), columns=FEATURES)


def test_registry_round_trip_preserves_predict_proba(tmp_path: Path) -> None:
    artifact = _artifact()
    model_id = save_model(artifact, tmp_path)
    loaded = load_model(tmp_path, model_id, expected_features=FEATURES)
    np.testing.assert_array_equal(
        loaded.estimator.predict_proba(_X()), artifact.estimator.predict_proba(_X())
    )
    assert loaded.manifest.model_sha256 and len(loaded.manifest.model_sha256) == 64


def test_registry_refuses_tampered_model(tmp_path: Path) -> None:
    model_id = save_model(_artifact(), tmp_path)
    with (tmp_path / model_id / "model.joblib").open("ab") as handle:
        handle.write(b"\x00evil")
    with pytest.raises(ModelIntegrityError, match="does not match its manifest"):
        load_model(tmp_path, model_id)


def test_registry_feature_mismatch_lists_missing_and_extra(tmp_path: Path) -> None:
    model_id = save_model(_artifact(), tmp_path)
    with pytest.raises(FeatureMismatchError, match=r"missing \['f3'\], extra \['f4'\]"):
        load_model(tmp_path, model_id, expected_features=["f1", "f2", "f4"])


def test_registry_unknown_and_invalid_ids(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        load_model(tmp_path, "nope")
    with pytest.raises(ModelNotFoundError, match="invalid model id"):
        load_model(tmp_path, "../etc")


def test_registry_ids_are_unique_and_listed(tmp_path: Path) -> None:
    first = save_model(_artifact(), tmp_path)
    second = save_model(_artifact(), tmp_path)
    assert second == f"{first}-2"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    assert [m.model_id for m in list_models(tmp_path)] == [first, second]


def test_registry_promote_sets_current(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="cryptopred train --symbol BTC/USDT"):
        load_current_model(tmp_path, "BTC/USDT", "1h")
    model_id = save_model(_artifact(), tmp_path)
    promote_model(tmp_path, model_id)
    assert current_model_id(tmp_path, "BTC/USDT", "1h") == model_id
    assert load_current_model(tmp_path, "BTC/USDT", "1h").model_id == model_id


def test_make_model_id_format() -> None:
    stamp = datetime(2021, 6, 10, 0, 0, tzinfo=UTC)
    assert make_model_id("ETH/USDT", "4h", "xgboost", stamp) == "ETH_USDT-4h-xgboost-20210610T0000Z"


def test_registry_concurrent_promotions_never_expose_a_partial_pointer(tmp_path: Path) -> None:
    first = save_model(_artifact(), tmp_path)
    second = save_model(_artifact(), tmp_path)
    promote_model(tmp_path, first)
    errors: list[BaseException] = []
    seen: set[str] = set()

    def promote(model_id: str) -> None:
        try:
            for _ in range(100):
                promote_model(tmp_path, model_id)
        except BaseException as e:  # collected and asserted below
            errors.append(e)

    writers = [threading.Thread(target=promote, args=(m,)) for m in (first, second) * 2]
    for thread in writers:
        thread.start()
    while any(thread.is_alive() for thread in writers):
        seen.add(current_model_id(tmp_path, "BTC/USDT", "1h") or "")
    for thread in writers:
        thread.join()
    assert not errors
    assert seen <= {first, second}
    assert not list((tmp_path / "current").glob("*.tmp"))
