"""The model registry: seeded estimator factories, default parameters and per-fold pipelines."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data
from xgboost import XGBClassifier

from core.errors import ConfigError
from core.settings import MLSettings
from core.types import MODEL_NAMES, ModelName

logger = logging.getLogger(__name__)

SCALERS: dict[str, type[TransformerMixin]] = {"standard": StandardScaler, "minmax": MinMaxScaler}
"""Scaler class per `preprocessing.scaler` value ("none" leaves the step out)."""

DEFAULT_PARAMS: dict[ModelName, dict[str, Any]] = {
    "logreg": {"C": 0.1, "max_iter": 1000},
    # min_samples_leaf / max_samples keep 200 trees affordable on 2 vCPU (NOTES.md "Model fits")
    "random_forest": {
        "n_estimators": 200,
        "min_samples_leaf": 50,
        "max_depth": 10,
        "max_features": "sqrt",
        "max_samples": 0.5,
        "n_jobs": 1,
    },
    "xgboost": {
        "n_estimators": 300,
        "learning_rate": 0.03,
        "max_depth": 3,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 10.0,
        "tree_method": "hist",
        "eval_metric": "logloss",
        "early_stopping_rounds": 50,
        "n_jobs": 1,
    },
    "lightgbm": {
        "n_estimators": 300,
        "learning_rate": 0.03,
        "num_leaves": 15,
        "min_child_samples": 100,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
        "early_stopping_round": 50,
        "n_jobs": 1,
        "verbose": -1,
    },
    "mlp": {
        "hidden_layer_sizes": (32, 16),
        "alpha": 1e-3,
        "learning_rate_init": 1e-3,
        "max_iter": 200,
        "early_stopping": True,  # MLP's own seeded internal split of the training rows
        "validation_fraction": 0.1,
        "n_iter_no_change": 10,
    },
}
"""Fast, sensible defaults; `ml.model.params[algorithm]` and explicit params override them."""

EARLY_STOPPING_PARAM: dict[type, str] = {
    LGBMClassifier: "early_stopping_round",
    XGBClassifier: "early_stopping_rounds",
}
"""Boosters that stop early on the validation slice, and the parameter that switches it on."""


def _make_logreg(params: dict[str, Any], seed: int) -> BaseEstimator:
    return LogisticRegression(**{"random_state": seed, **params})


def _make_random_forest(params: dict[str, Any], seed: int) -> BaseEstimator:
    return RandomForestClassifier(**{"random_state": seed, **params})


def _make_xgboost(params: dict[str, Any], seed: int) -> BaseEstimator:
    return XGBClassifier(**{"random_state": seed, **params})


def _make_lightgbm(params: dict[str, Any], seed: int) -> BaseEstimator:
    return LGBMClassifier(**{"random_state": seed, **params})


def _make_mlp(params: dict[str, Any], seed: int) -> BaseEstimator:
    return MLPClassifier(**{"random_state": seed, **params})


MODEL_FACTORIES: dict[ModelName, Callable[[dict[str, Any], int], BaseEstimator]] = {
    "logreg": _make_logreg,
    "random_forest": _make_random_forest,
    "xgboost": _make_xgboost,
    "lightgbm": _make_lightgbm,
    "mlp": _make_mlp,
}

_LGBM_EVAL_XY = "eval_X" in inspect.signature(LGBMClassifier.fit).parameters
"""LightGBM >= 4.6 takes eval_X/eval_y and deprecates eval_set."""

_NATIVE_CLASS_WEIGHT: frozenset[ModelName] = frozenset({"logreg", "random_forest", "lightgbm"})


class CorrelationFilter(TransformerMixin, BaseEstimator):
    """Drop one feature of each pair whose absolute Pearson correlation exceeds `threshold`.

    Columns are visited left to right; a column is kept when its |corr| with every column kept
    so far is <= `threshold`. Constant columns count as uncorrelated. `threshold=None` keeps all.

    >>> X = np.array([[1.0, 2.0, 0.0], [2.0, 4.1, 1.0], [3.0, 6.0, 0.0], [4.0, 8.2, 1.0]])
    >>> CorrelationFilter(threshold=0.9).fit(X).support_.tolist()
    [True, False, True]
    """

    def __init__(self, threshold: float | None = 0.95) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any = None) -> CorrelationFilter:
        """Learn which columns to keep from the rows of `X` only."""
        X = validate_data(self, X, dtype=np.float64)
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1] or None, got {self.threshold!r}")
        self.support_ = _correlation_support(X, self.threshold)
        return self

    def transform(self, X: Any) -> npt.NDArray[np.float64]:
        """Keep only the selected columns."""
        check_is_fitted(self, "support_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.asarray(X[:, self.support_])

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.object_]:
        """Names of the kept columns."""
        check_is_fitted(self, "support_")
        names = _check_feature_names_in(self, input_features)
        return np.asarray(names[self.support_], dtype=object)


def _correlation_support(
    X: npt.NDArray[np.float64], threshold: float | None
) -> npt.NDArray[np.bool_]:
    n_rows, n_cols = X.shape
    support = np.ones(n_cols, dtype=bool)
    if threshold is None or n_rows < 2 or n_cols < 2:
        return support
    centred = X - X.mean(axis=0)
    norms = np.sqrt(np.einsum("ij,ij->j", centred, centred))
    safe = np.where(norms > 0, norms, 1.0)
    corr = np.abs((centred.T @ centred) / np.outer(safe, safe))
    corr[:, norms == 0] = 0.0
    kept: list[int] = []
    for col in range(n_cols):
        if kept and corr[col, kept].max() > threshold:
            support[col] = False
        else:
            kept.append(col)
    return support


def resolve_params(
    algorithm: ModelName, ml: MLSettings, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Defaults, then `ml.model.params[algorithm]`, then explicit `params` (later wins)."""
    if algorithm not in MODEL_FACTORIES:
        raise ConfigError(f"unknown model {algorithm!r}; choose one of {', '.join(MODEL_NAMES)}")
    return {**DEFAULT_PARAMS[algorithm], **ml.model.params.get(algorithm, {}), **(params or {})}


def _balance_params(
    algorithm: ModelName, ml: MLSettings, y_train: pd.Series | None
) -> dict[str, Any]:
    if ml.preprocessing.class_weight != "balanced":
        return {}
    if algorithm in _NATIVE_CLASS_WEIGHT:
        return {"class_weight": "balanced"}
    if algorithm == "xgboost" and y_train is not None:
        n_pos = int(np.sum(np.asarray(y_train) == 1))
        n_neg = int(np.asarray(y_train).size - n_pos)
        return {"scale_pos_weight": n_neg / n_pos if n_pos else 1.0}
    return {}  # mlp: balanced sample weights are passed at fit time (fit_pipeline)


def build_pipeline(
    algorithm: ModelName,
    ml: MLSettings,
    *,
    params: dict[str, Any] | None = None,
    y_train: pd.Series | None = None,
) -> Pipeline:
    """scaler -> CorrelationFilter -> estimator, seeded with `ml.seed`, classes balanced per config.

    Args:
        algorithm: key of `MODEL_FACTORIES`.
        ml: settings (preprocessing, per-model params, seed).
        params: explicit overrides (e.g. tuned values) on top of defaults and config.
        y_train: training labels, needed for xgboost's `scale_pos_weight`.
    """
    merged = resolve_params(algorithm, ml, params)
    balance = _balance_params(algorithm, ml, y_train)
    estimator = MODEL_FACTORIES[algorithm]({**balance, **merged}, ml.seed)
    steps: list[tuple[str, Any]] = []
    if ml.preprocessing.scaler != "none":
        steps.append(("scaler", SCALERS[ml.preprocessing.scaler]()))
    if ml.preprocessing.correlation_threshold is not None:
        steps.append(
            ("select", CorrelationFilter(threshold=ml.preprocessing.correlation_threshold))
        )
    steps.append(("model", estimator))
    return Pipeline(steps)


def fit_pipeline(
    pipeline: Pipeline,
    X_fit: pd.DataFrame,
    y_fit: pd.Series,
    *,
    X_val: pd.DataFrame | None = None,
    y_val: pd.Series | None = None,
    balance_classes: bool = False,
) -> Pipeline:
    """Fit preprocessing on `X_fit` only; boosters stop early on the (transformed) validation rows.

    Without validation rows early stopping is switched off. `balance_classes` adds balanced
    sample weights for estimators with no class-weight parameter (the MLP).
    """
    model = pipeline[-1]
    stop_param = EARLY_STOPPING_PARAM.get(type(model))
    fit_kwargs: dict[str, Any] = {}
    if balance_classes and isinstance(model, MLPClassifier):
        fit_kwargs["sample_weight"] = compute_sample_weight("balanced", np.asarray(y_fit))
    if stop_param is None or model.get_params().get(stop_param) is None:
        return pipeline.fit(X_fit, y_fit, **{f"model__{k}": v for k, v in fit_kwargs.items()})
    if X_val is None or y_val is None or len(X_val) == 0:
        model.set_params(**{stop_param: None})
        return pipeline.fit(X_fit, y_fit)
    if len(pipeline) > 1:
        preprocess = pipeline[:-1]
        X_fit_t, X_val_t = preprocess.fit_transform(X_fit, y_fit), preprocess.transform(X_val)
    else:
        X_fit_t, X_val_t = X_fit, X_val
    if isinstance(model, XGBClassifier):
        fit_kwargs["verbose"] = False
    if isinstance(model, LGBMClassifier) and _LGBM_EVAL_XY:
        fit_kwargs.update(eval_X=X_val_t, eval_y=y_val)
    else:
        fit_kwargs["eval_set"] = [(X_val_t, y_val)]
    model.fit(X_fit_t, y_fit, **fit_kwargs)
    return pipeline


def native_importances(pipeline: Pipeline, feature_names: list[str]) -> pd.Series | None:
    """Model-native importance (|coef| or feature_importances_) per ORIGINAL feature, sum 1.

    Features dropped by the correlation filter get 0. None when the model has neither.
    """
    model = pipeline[-1]
    if hasattr(model, "coef_"):
        values = np.abs(np.asarray(model.coef_, dtype=np.float64)).ravel()
    elif hasattr(model, "feature_importances_"):
        values = np.asarray(model.feature_importances_, dtype=np.float64)
    else:
        return None
    kept = (
        list(pipeline[:-1].get_feature_names_out(feature_names))
        if len(pipeline) > 1
        else list(feature_names)
    )
    total = values.sum()
    out = pd.Series(0.0, index=pd.Index(feature_names, name="feature"), name="native")
    out.loc[kept] = values / total if total > 0 else values
    return out
