"""Optuna (TPE) search of model parameters on one fold's validation slice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn import metrics as skm

from core.errors import NotEnoughDataError
from core.settings import MLSettings
from core.types import ModelName
from ml.estimators import build_pipeline, fit_pipeline

logger = logging.getLogger(__name__)

HIDDEN_LAYERS: dict[str, tuple[int, ...]] = {
    "16": (16,),
    "32": (32,),
    "32-16": (32, 16),
    "64-32": (64, 32),
}
"""MLP layer shapes by name (Optuna categorical choices must be plain values)."""


def _logreg_space(trial: optuna.Trial) -> dict[str, Any]:
    return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}


def _random_forest_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "max_depth": trial.suggest_int("max_depth", 3, 12),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 20, 300, log=True),
        "max_features": trial.suggest_categorical("max_features", ["sqrt", "log2", 0.5]),
    }


def _xgboost_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 200.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def _lightgbm_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 500, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
    }


def _mlp_space(trial: optuna.Trial) -> dict[str, Any]:
    layers = trial.suggest_categorical("hidden_layer_sizes", list(HIDDEN_LAYERS))
    return {
        "hidden_layer_sizes": HIDDEN_LAYERS[str(layers)],
        "alpha": trial.suggest_float("alpha", 1e-5, 1e-1, log=True),
        "learning_rate_init": trial.suggest_float("learning_rate_init", 1e-4, 1e-2, log=True),
    }


SEARCH_SPACES: dict[ModelName, Callable[[optuna.Trial], dict[str, Any]]] = {
    "logreg": _logreg_space,
    "random_forest": _random_forest_space,
    "xgboost": _xgboost_space,
    "lightgbm": _lightgbm_space,
    "mlp": _mlp_space,
}


def _score(metric: str, y_val: pd.Series, proba: np.ndarray) -> float:
    if metric == "roc_auc":
        return float(skm.roc_auc_score(y_val, proba))
    return float(skm.log_loss(y_val, proba, labels=[0, 1]))


def tune_params(
    algorithm: ModelName,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    ml: MLSettings,
) -> dict[str, Any]:
    """Search `algorithm`'s space with seeded TPE; return the best parameter overrides.

    Each trial fits the same pipeline recipe as a fold on the training rows and scores the
    uncalibrated probabilities on the validation rows (log-loss minimised or ROC-AUC maximised,
    `ml.tuning.metric`). Bounded by `ml.tuning.n_trials` and `ml.tuning.timeout_seconds`
    (a timeout makes the result depend on machine speed).

    Raises:
        NotEnoughDataError: the validation rows do not hold both classes.
    """
    if len(np.unique(np.asarray(y_val))) < 2:
        raise NotEnoughDataError(
            f"tuning needs UP and DOWN rows in the validation slice ({len(y_val)} rows); "
            "raise walk_forward.validation_bars or turn tuning off"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no per-trial INFO lines
    metric = ml.tuning.metric
    balance = ml.preprocessing.class_weight == "balanced"
    space = SEARCH_SPACES[algorithm]

    def objective(trial: optuna.Trial) -> float:
        pipeline = build_pipeline(algorithm, ml, params=space(trial), y_train=y_train)
        fit_pipeline(pipeline, X_train, y_train, X_val=X_val, y_val=y_val, balance_classes=balance)
        return _score(metric, y_val, pipeline.predict_proba(X_val)[:, 1])

    study = optuna.create_study(
        direction="maximize" if metric == "roc_auc" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=ml.seed),
    )
    study.optimize(objective, n_trials=ml.tuning.n_trials, timeout=ml.tuning.timeout_seconds)
    best = study.best_trial
    logger.debug(
        "Tuned %s: %d trials, best %s=%.4f", algorithm, len(study.trials), metric, best.value
    )
    params = dict(best.params)
    if "hidden_layer_sizes" in params:
        params["hidden_layer_sizes"] = HIDDEN_LAYERS[params["hidden_layer_sizes"]]
    return params
