"""Tests of the estimator registry, the per-fold pipeline and the CorrelationFilter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from xgboost import XGBClassifier

from core.errors import ConfigError
from core.settings import MLSettings
from core.types import MODEL_NAMES
from ml.estimators import (
    DEFAULT_PARAMS,
    MODEL_FACTORIES,
    CorrelationFilter,
    build_pipeline,
    fit_pipeline,
    native_importances,
    resolve_params,
)
from tests.factories import make_settings


@parametrize_with_checks([CorrelationFilter(), CorrelationFilter(threshold=0.5)])
def test_correlation_filter_sklearn_contract(estimator, check) -> None:
    check(estimator)


def _frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, n))
    X = pd.DataFrame(
        {"a": a, "a_copy": 2 * a + rng.normal(0, 0.01, n), "b": b, "c": c, "const": 1.0}
    )
    y = pd.Series((a + 0.5 * b + rng.normal(0, 1, n) > 0).astype(int))
    return X, y


def test_correlation_filter_drops_the_later_of_a_correlated_pair() -> None:
    X, _ = _frame()
    selector = CorrelationFilter(threshold=0.95).fit(X)
    assert selector.support_.tolist() == [True, False, True, True, True]
    assert selector.get_feature_names_out().tolist() == ["a", "b", "c", "const"]
    assert selector.transform(X).shape == (400, 4)
    assert CorrelationFilter(threshold=None).fit(X).support_.all()


def test_correlation_filter_rejects_bad_threshold() -> None:
    X, _ = _frame()
    with pytest.raises(ValueError, match="threshold"):
        CorrelationFilter(threshold=1.5).fit(X)


def test_model_registry_covers_every_model_name() -> None:
    assert set(MODEL_FACTORIES) == set(MODEL_NAMES) == set(DEFAULT_PARAMS)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # mlp, 30 epochs
@pytest.mark.parametrize("algorithm", MODEL_NAMES)
def test_build_pipeline_fits_and_predicts_every_model(algorithm) -> None:
    X, y = _frame(600)
    ml = make_settings(
        ml={
            "model": {
                "params": {
                    "random_forest": {"n_estimators": 10},
                    "xgboost": {"n_estimators": 20},
                    "lightgbm": {"n_estimators": 20},
                    "mlp": {"max_iter": 30},
                }
            }
        }
    ).ml
    pipeline = build_pipeline(algorithm, ml, y_train=y)
    assert [name for name, _ in pipeline.steps] == ["scaler", "select", "model"]
    fit_pipeline(pipeline, X.iloc[:500], y.iloc[:500], X_val=X.iloc[500:], y_val=y.iloc[500:])
    proba = pipeline.predict_proba(X.iloc[500:])
    assert proba.shape == (100, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    again = build_pipeline(algorithm, ml, y_train=y)
    fit_pipeline(again, X.iloc[:500], y.iloc[:500], X_val=X.iloc[500:], y_val=y.iloc[500:])
    assert np.array_equal(again.predict_proba(X.iloc[500:]), proba)  # seeded: identical


def test_build_pipeline_steps_follow_preprocessing_settings() -> None:
    minmax = make_settings(ml={"preprocessing": {"scaler": "minmax"}}).ml
    assert isinstance(build_pipeline("logreg", minmax)[0], MinMaxScaler)
    assert isinstance(build_pipeline("logreg", MLSettings())[0], StandardScaler)
    bare = make_settings(ml={"preprocessing": {"scaler": "none", "correlation_threshold": None}}).ml
    assert [name for name, _ in build_pipeline("logreg", bare).steps] == ["model"]


def test_build_pipeline_balances_classes() -> None:
    y = pd.Series([1] * 30 + [0] * 70)
    ml = MLSettings()
    assert build_pipeline("logreg", ml)[-1].class_weight == "balanced"
    assert build_pipeline("lightgbm", ml)[-1].class_weight == "balanced"
    assert build_pipeline("xgboost", ml, y_train=y)[-1].scale_pos_weight == pytest.approx(70 / 30)
    off = make_settings(ml={"preprocessing": {"class_weight": "none"}}).ml
    assert build_pipeline("logreg", off)[-1].class_weight is None


def test_build_pipeline_seeds_every_estimator() -> None:
    ml = make_settings(ml={"seed": 7}).ml
    for algorithm in MODEL_NAMES:
        assert build_pipeline(algorithm, ml)[-1].get_params()["random_state"] == 7


def test_resolve_params_precedence() -> None:
    ml = make_settings(ml={"model": {"params": {"lightgbm": {"num_leaves": 7, "n_jobs": 2}}}}).ml
    params = resolve_params("lightgbm", ml, {"num_leaves": 3})
    assert params["num_leaves"] == 3
    assert params["n_jobs"] == 2
    assert params["n_estimators"] == DEFAULT_PARAMS["lightgbm"]["n_estimators"]
    with pytest.raises(ConfigError, match="unknown model 'svm'"):
        resolve_params("svm", ml)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost"])
def test_fit_pipeline_early_stops_on_validation_rows(algorithm) -> None:
    X, y = _frame(800)
    noise = pd.DataFrame(np.random.default_rng(5).normal(size=(800, 5)), columns=list("vwxyz"))
    y_noise = pd.Series(np.random.default_rng(6).integers(0, 2, 800))
    ml = MLSettings()
    pipeline = build_pipeline(algorithm, ml, y_train=y_noise)
    fit_pipeline(pipeline, noise[:600], y_noise[:600], X_val=noise[600:], y_val=y_noise[600:])
    model = pipeline[-1]
    best = model.best_iteration_ if isinstance(model, LGBMClassifier) else model.best_iteration
    assert best < DEFAULT_PARAMS[algorithm]["n_estimators"] - 1  # pure noise: stops early
    no_val = build_pipeline(algorithm, ml, y_train=y)
    fit_pipeline(no_val, X, y)  # no validation rows: early stopping switched off, no error
    assert no_val.predict_proba(X).shape == (800, 2)


def test_native_importances_map_back_through_the_filter() -> None:
    X, y = _frame()
    pipeline = build_pipeline("logreg", MLSettings()).fit(X, y)
    importances = native_importances(pipeline, list(X.columns))
    assert importances is not None
    assert importances.index.tolist() == list(X.columns)
    assert importances["a_copy"] == 0.0  # dropped by the correlation filter
    assert importances.sum() == pytest.approx(1.0)
    assert importances.idxmax() == "a"
    mlp = build_pipeline(
        "mlp", make_settings(ml={"model": {"params": {"mlp": {"max_iter": 5}}}}).ml
    )
    with pytest.warns(Warning):  # few iterations: convergence warning is fine here
        mlp.fit(X, y)
    assert native_importances(mlp, list(X.columns)) is None


def test_xgboost_without_validation_has_no_early_stopping() -> None:
    X, y = _frame(300)
    pipeline = build_pipeline("xgboost", MLSettings(), y_train=y)
    fit_pipeline(pipeline, X, y)
    assert isinstance(pipeline[-1], XGBClassifier)
    assert pipeline[-1].get_params()["early_stopping_rounds"] is None
