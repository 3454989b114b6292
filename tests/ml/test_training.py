"""Tests of the shared window recipe, the final model, calibration and task dispatch."""

from __future__ import annotations

import operator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV

from core.errors import ConfigError, NotEnoughDataError
from core.settings import ComputeSettings
from ml.calibration import THRESHOLD_GRID, calibrate, choose_threshold
from ml.compute import map_tasks
from ml.estimators import build_pipeline, fit_pipeline
from ml.evaluation import roc_auc
from ml.training import fit_final_model, fit_window
from tests.factories import make_settings
from tests.ml.test_walk_forward import make_hand_dataset, small_ml


# ----------------------------------------------------------------------------- final model
def test_fit_final_model_rolling_uses_the_latest_window() -> None:
    dataset = make_hand_dataset(deadband=0.004)
    ml = small_ml(mode="rolling")
    model = fit_final_model(dataset, ml, algorithm="logreg")
    index = dataset.X.index
    fit_rows = dataset.trainable.iloc[-500:-101]  # 500 - 100 validation - 1 purge
    assert model.train_start == fit_rows[fit_rows].index[0] >= index[-500]  # first fitted row
    assert model.train_end == dataset.trainable[dataset.trainable].index[-1]
    assert model.n_train == int(fit_rows.sum()) < 399
    assert model.feature_names == tuple(dataset.X.columns)
    assert model.algorithm == "logreg"
    assert model.params["C"] == 0.1
    assert model.validation_metrics is not None
    assert model.importances.index.tolist() == list(dataset.X.columns)


def test_fit_final_model_expanding_uses_all_rows() -> None:
    dataset = make_hand_dataset()
    model = fit_final_model(dataset, small_ml(), algorithm="logreg")
    assert model.train_start == dataset.X.index[0]
    assert model.n_train == len(dataset.X) - 100 - 1


def test_fit_final_model_survives_joblib_round_trip(tmp_path: Path) -> None:
    dataset = make_hand_dataset(phi=0.3)
    model = fit_final_model(dataset, small_ml(), algorithm="lightgbm")
    path = tmp_path / "model.joblib"
    joblib.dump(model.estimator, path)
    loaded = joblib.load(path)
    X = dataset.X.iloc[-50:]
    proba = model.estimator.predict_proba(X)
    assert proba.shape == (50, 2)
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)


def test_fit_final_model_without_validation_is_uncalibrated() -> None:
    dataset = make_hand_dataset()
    model = fit_final_model(dataset, small_ml(validation_bars=0), algorithm="logreg")
    assert model.validation_metrics is None
    assert model.threshold == 0.5
    assert not isinstance(model.estimator, CalibratedClassifierCV)
    assert model.importances.notna().all()  # native importances instead of permutation


def test_fit_final_model_too_few_rows() -> None:
    dataset = make_hand_dataset(n=90)
    with pytest.raises(NotEnoughDataError, match="final model: 90 rows"):
        fit_final_model(dataset, small_ml(validation_bars=100), algorithm="logreg")


def test_fit_window_single_class_training_rows_raise() -> None:
    dataset = make_hand_dataset(n=300)
    ones = pd.Series(1, index=dataset.y.index)
    with pytest.raises(NotEnoughDataError, match="fold 3: 200 trainable rows"):
        fit_window(
            dataset.X[:200],
            ones[:200],
            dataset.X[200:],
            dataset.y[200:],
            small_ml(),
            algorithm="logreg",
            tune=False,
            what="fold 3",
        )


def test_fit_window_tuning_without_validation_is_a_config_error() -> None:
    dataset = make_hand_dataset(n=300)
    with pytest.raises(ConfigError, match="validation_bars"):
        fit_window(
            dataset.X,
            dataset.y,
            dataset.X[:0],
            dataset.y[:0],
            small_ml(),
            algorithm="logreg",
            tune=True,
        )


# ----------------------------------------------------------------------------- calibration
def _imbalanced(n: int = 3000) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(4)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = pd.Series((X["a"] + rng.normal(0, 2, n) > -1.7).astype(int))  # ~80 % UP
    return X, y


def test_calibrate_sigmoid_fixes_balanced_class_weights_without_refitting() -> None:
    X, y = _imbalanced()
    pipeline = build_pipeline("logreg", make_settings().ml)  # class_weight="balanced"
    fit_pipeline(pipeline, X[:2000], y[:2000])
    coef = pipeline[-1].coef_.copy()
    raw = pipeline.predict_proba(X[2000:2500])[:, 1]
    assert raw.mean() < 0.7  # balanced weights pull probabilities towards 0.5
    calibrated = calibrate(pipeline, X[2000:2500], y[2000:2500], method="sigmoid")
    proba = calibrated.predict_proba(X[2500:])[:, 1]
    assert proba.mean() == pytest.approx(y[2500:].mean(), abs=0.04)
    np.testing.assert_array_equal(pipeline[-1].coef_, coef)  # frozen, never refitted
    assert roc_auc(y[2500:], proba) == pytest.approx(
        roc_auc(y[2500:], pipeline.predict_proba(X[2500:])[:, 1])
    )


def test_calibrate_none_and_isotonic() -> None:
    X, y = _imbalanced(1000)
    pipeline = fit_pipeline(build_pipeline("logreg", make_settings().ml), X[:600], y[:600])
    assert calibrate(pipeline, X[600:], y[600:], method="none") is pipeline
    isotonic = calibrate(pipeline, X[600:800], y[600:800], method="isotonic")
    assert isinstance(isotonic, CalibratedClassifierCV)
    assert isotonic.predict_proba(X[800:]).shape == (200, 2)


def test_calibrate_needs_both_classes() -> None:
    X, y = _imbalanced(500)
    pipeline = fit_pipeline(build_pipeline("logreg", make_settings().ml), X, y)
    with pytest.raises(NotEnoughDataError, match="calibration needs UP and DOWN"):
        calibrate(pipeline, X[:10], pd.Series(np.ones(10, dtype=int)), method="sigmoid")


def test_choose_threshold_maximises_validation_accuracy() -> None:
    rng = np.random.default_rng(0)
    proba = rng.uniform(0.4, 0.6, 400)
    y = (proba > 0.53).astype(int)
    threshold = choose_threshold(y, proba)
    assert threshold in THRESHOLD_GRID
    assert abs(threshold - 0.53) <= 0.005
    with pytest.raises(NotEnoughDataError):
        choose_threshold([], [])


# ----------------------------------------------------------------------------- compute
def test_map_tasks_keeps_order_and_reports_each_result() -> None:
    seen: list[int] = []
    results = map_tasks(operator.neg, [3, 1, 2], ComputeSettings(), on_result=seen.append)
    assert results == seen == [-3, -1, -2]


def test_map_tasks_unreachable_dask_scheduler_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ml.compute.CONNECT_TIMEOUT", "1s")
    dask = ComputeSettings(backend="dask", scheduler_address="tcp://127.0.0.1:9")
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        map_tasks(operator.neg, [1], dask)


@pytest.mark.slow
def test_map_tasks_joblib_workers_keep_order() -> None:
    seen: list[int] = []
    results = map_tasks(abs, list(range(-6, 0)), ComputeSettings(n_jobs=2), on_result=seen.append)
    assert results == seen == [6, 5, 4, 3, 2, 1]
