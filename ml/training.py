"""Fit one training window (the recipe every fold and the final model share) and the final model."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from core.errors import ConfigError, NotEnoughDataError
from core.settings import MLSettings
from core.types import ModelName
from ml.calibration import calibrate, choose_threshold
from ml.dataset import Dataset
from ml.estimators import build_pipeline, fit_pipeline, native_importances, resolve_params
from ml.evaluation import ClassificationMetrics, classification_metrics, roc_auc
from ml.tuning import tune_params

logger = logging.getLogger(__name__)

PERMUTATION_MAX_ROWS = 2000
"""Validation rows (the most recent) used for permutation importance, to bound its cost."""
PERMUTATION_REPEATS = 3


@dataclass(frozen=True, slots=True)
class FittedWindow:
    """A model fitted on one window: calibrated estimator, threshold and importances."""

    estimator: Any
    pipeline: Pipeline
    params: dict[str, Any]
    best_params: dict[str, Any]
    threshold: float
    validation_metrics: ClassificationMetrics | None
    native_importance: pd.Series
    permutation_importance: pd.Series
    n_fit: int
    fit_seconds: float


@dataclass(frozen=True, slots=True)
class FinalModel:
    """The model to save and serve, fitted on the latest window."""

    estimator: Any
    feature_names: tuple[str, ...]
    algorithm: ModelName
    params: dict[str, Any]
    threshold: float
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    validation_metrics: ClassificationMetrics | None
    importances: pd.Series
    n_train: int


def _check_fit_rows(y_fit: pd.Series, what: str) -> None:
    classes = np.unique(np.asarray(y_fit))
    if len(classes) < 2:
        raise NotEnoughDataError(
            f"{what}: {len(y_fit)} trainable rows hold only class(es) {classes.tolist()}; "
            "use a longer walk_forward.train_bars or a smaller labels.deadband"
        )


def _auc_scorer(estimator: Any, X: pd.DataFrame, y: pd.Series) -> float:
    """ROC-AUC scorer; rank-based, so the uncalibrated pipeline ranks features the same way."""
    return roc_auc(y, estimator.predict_proba(X)[:, 1])


def _permutation_importance(
    pipeline: Pipeline, X_val: pd.DataFrame, y_val: pd.Series, seed: int
) -> pd.Series:
    names = pd.Index(X_val.columns, name="feature")
    if len(np.unique(np.asarray(y_val))) < 2:
        return pd.Series(np.nan, index=names, name="permutation")
    X_part, y_part = X_val.iloc[-PERMUTATION_MAX_ROWS:], y_val.iloc[-PERMUTATION_MAX_ROWS:]
    result = permutation_importance(
        pipeline,
        X_part,
        y_part,
        scoring=_auc_scorer,
        n_repeats=PERMUTATION_REPEATS,
        random_state=seed,
        n_jobs=1,
    )
    return pd.Series(result.importances_mean, index=names, name="permutation")


def fit_window(
    X_fit: pd.DataFrame,
    y_fit: pd.Series,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    ml: MLSettings,
    *,
    algorithm: ModelName,
    tune: bool,
    what: str = "window",
) -> FittedWindow:
    """Tune (optional), fit, calibrate, choose the threshold and measure importance.

    Only `X_fit` rows fit the pipeline (scaler, selector, model); the validation rows serve
    early stopping, tuning, calibration, the threshold and permutation importance. Pass
    trainable rows only (dead-band rows are excluded by the caller).
    """
    started = time.perf_counter()
    _check_fit_rows(y_fit, what)
    has_val = len(X_val) > 0
    if tune and not has_val:
        raise ConfigError(
            f"{what}: tuning needs a validation slice; set walk_forward.validation_bars > 0"
        )
    best_params = tune_params(algorithm, X_fit, y_fit, X_val, y_val, ml) if tune else {}
    pipeline = build_pipeline(algorithm, ml, params=best_params, y_train=y_fit)
    balance = ml.preprocessing.class_weight == "balanced"
    fit_pipeline(pipeline, X_fit, y_fit, X_val=X_val, y_val=y_val, balance_classes=balance)
    method = ml.calibration.method if has_val else "none"
    estimator = calibrate(pipeline, X_val, y_val, method=method)
    threshold, val_metrics, permutation = _validation_choices(estimator, pipeline, X_val, y_val, ml)
    native = native_importances(pipeline, list(X_fit.columns))
    if native is None:
        native = pd.Series(np.nan, index=pd.Index(X_fit.columns, name="feature"))
    return FittedWindow(
        estimator=estimator,
        pipeline=pipeline,
        params=resolve_params(algorithm, ml, best_params),
        best_params=best_params,
        threshold=threshold,
        validation_metrics=val_metrics,
        native_importance=native.rename("native"),
        permutation_importance=permutation.rename("permutation"),
        n_fit=len(X_fit),
        fit_seconds=time.perf_counter() - started,
    )


def _validation_choices(
    estimator: Any, pipeline: Pipeline, X_val: pd.DataFrame, y_val: pd.Series, ml: MLSettings
) -> tuple[float, ClassificationMetrics | None, pd.Series]:
    """Threshold, validation metrics and permutation importance (defaults without validation)."""
    if len(X_val) == 0:
        return 0.5, None, pd.Series(np.nan, index=pd.Index(X_val.columns, name="feature"))
    proba_val = estimator.predict_proba(X_val)[:, 1]
    threshold = choose_threshold(y_val, proba_val) if ml.calibration.tune_threshold else 0.5
    metrics = classification_metrics(y_val, proba_val, threshold=threshold)
    return threshold, metrics, _permutation_importance(pipeline, X_val, y_val, ml.seed)


def final_window(
    n_rows: int, ml: MLSettings
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Row positions (fit, validation) of the latest window, purged like a walk-forward fold.

    Rolling mode uses the last `train_bars` rows, expanding and holdout modes all rows; the
    validation slice is the window's end (holdout: its validation share of the window).
    """
    cfg = ml.walk_forward
    gap = max(cfg.gap_bars, ml.labels.horizon_bars)
    start = max(0, n_rows - cfg.train_bars) if cfg.mode == "rolling" else 0
    n_window = n_rows - start
    if cfg.mode == "holdout":
        train_share, val_share, _ = cfg.holdout_fractions
        n_val = round(n_window * val_share / (train_share + val_share))
    else:
        n_val = cfg.validation_bars
    n_fit = n_window - n_val - (gap if n_val else 0)
    if n_fit < 2:
        raise NotEnoughDataError(
            f"final model: {n_rows} rows leave {n_fit} to fit after {n_val} validation rows and "
            f"a purge gap of {gap}; provide more candles or lower walk_forward.validation_bars"
        )
    fit = np.arange(start, start + n_fit, dtype=np.int64)
    validation = np.arange(n_rows - n_val, n_rows, dtype=np.int64)
    return fit, validation


def fit_final_model(
    dataset: Dataset, ml: MLSettings, *, algorithm: ModelName, tune: bool | None = None
) -> FinalModel:
    """Fit the model to serve: one walk-forward recipe on the latest window.

    `validation_metrics` are measured on the validation slice that also calibrated the model
    and chose its threshold, so they are optimistic; quote walk-forward metrics instead.
    """
    fit_rows, val_rows = final_window(len(dataset.X), ml)
    trainable = dataset.trainable.to_numpy(dtype=bool)
    fit_rows, val_rows = fit_rows[trainable[fit_rows]], val_rows[trainable[val_rows]]
    X, y = dataset.X, dataset.y
    fitted = fit_window(
        X.iloc[fit_rows],
        y.iloc[fit_rows],
        X.iloc[val_rows],
        y.iloc[val_rows],
        ml,
        algorithm=algorithm,
        tune=ml.tuning.enabled if tune is None else tune,
        what="final model",
    )
    importances = fitted.permutation_importance
    if importances.isna().all():
        importances = fitted.native_importance
    last = val_rows[-1] if len(val_rows) else fit_rows[-1]
    logger.info(
        "Final %s model fitted on %d rows %s..%s in %.1fs",
        algorithm,
        fitted.n_fit,
        X.index[fit_rows[0]],
        X.index[last],
        fitted.fit_seconds,
    )
    return FinalModel(
        estimator=fitted.estimator,
        feature_names=tuple(str(name) for name in X.columns),
        algorithm=algorithm,
        params=fitted.params,
        threshold=fitted.threshold,
        train_start=X.index[fit_rows[0]],
        train_end=X.index[last],
        validation_metrics=fitted.validation_metrics,
        importances=importances.rename("importance"),
        n_train=fitted.n_fit,
    )
