"""Tests of the Optuna parameter search on a fold's validation slice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import NotEnoughDataError
from core.settings import ComputeSettings, MLSettings
from ml.tuning import HIDDEN_LAYERS, tune_params
from ml.walk_forward import run_walk_forward
from tests.factories import make_settings
from tests.ml.test_walk_forward import make_hand_dataset, small_ml


def _split(n: int = 900) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    dataset = make_hand_dataset(n=n, phi=0.3)
    cut = int(n * 0.75)
    return dataset.X[:cut], dataset.y[:cut], dataset.X[cut + 1 :], dataset.y[cut + 1 :]


def _tuning(n_trials: int, metric: str = "log_loss") -> MLSettings:
    return make_settings(
        ml={"tuning": {"n_trials": n_trials, "timeout_seconds": None, "metric": metric}}
    ).ml


def test_tune_params_logreg_is_seeded_and_in_bounds() -> None:
    X, y, X_val, y_val = _split()
    first = tune_params("logreg", X, y, X_val, y_val, _tuning(6))
    assert set(first) == {"C"}
    assert 1e-3 <= first["C"] <= 10.0
    assert tune_params("logreg", X, y, X_val, y_val, _tuning(6)) == first
    other_seed = _tuning(6).model_copy(update={"seed": 1})
    assert tune_params("logreg", X, y, X_val, y_val, other_seed) != first


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 20 mlp epochs
def test_tune_params_lightgbm_and_mlp_spaces() -> None:
    X, y, X_val, y_val = _split()
    lightgbm = tune_params("lightgbm", X, y, X_val, y_val, _tuning(2, "roc_auc"))
    assert set(lightgbm) == {
        "num_leaves",
        "learning_rate",
        "min_child_samples",
        "subsample",
        "colsample_bytree",
        "reg_lambda",
    }
    small_mlp = make_settings(
        ml={
            "tuning": {"n_trials": 2, "timeout_seconds": None},
            "model": {"params": {"mlp": {"max_iter": 20}}},
        }
    ).ml
    mlp = tune_params("mlp", X, y, X_val, y_val, small_mlp)
    assert mlp["hidden_layer_sizes"] in HIDDEN_LAYERS.values()


def test_tune_params_prints_no_trial_logs(capfd) -> None:
    X, y, X_val, y_val = _split()
    tune_params("logreg", X, y, X_val, y_val, _tuning(3))
    out, err = capfd.readouterr()
    assert "Trial" not in out + err


def test_tune_params_needs_both_classes_in_validation() -> None:
    X, y, X_val, _ = _split()
    with pytest.raises(NotEnoughDataError, match="validation slice"):
        tune_params("logreg", X, y, X_val, pd.Series(np.ones(len(X_val), dtype=int)), _tuning(2))


def test_run_walk_forward_with_tuning_records_best_params_per_fold() -> None:
    ml = small_ml().model_copy(update={"tuning": _tuning(3).tuning})
    result = run_walk_forward(
        make_hand_dataset(phi=0.2), ml, algorithm="logreg", compute=ComputeSettings(), tune=True
    )
    assert all(set(fold.best_params) == {"C"} for fold in result.folds)
    untuned = run_walk_forward(
        make_hand_dataset(phi=0.2), ml, algorithm="logreg", compute=ComputeSettings()
    )
    assert all(fold.best_params == {} for fold in untuned.folds)  # tuning.enabled is False
