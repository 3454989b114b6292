"""End-to-end honesty checks: no edge on a random walk, the planted edge found on AR(1) returns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.settings import ComputeSettings, MLSettings
from ml.dataset import Dataset, make_dataset
from ml.evaluation import roc_auc
from ml.walk_forward import run_walk_forward
from tests.factories import make_ohlcv

pytestmark = pytest.mark.slow

N_CANDLES = 20_000
AR_COEFFICIENT = 0.3


def ar1_log_returns(n: int, *, phi: float, seed: int, volatility: float = 0.01) -> np.ndarray:
    """r[t] = phi * r[t-1] + e[t], e ~ N(0, volatility^2)."""
    shocks = np.random.default_rng(seed).normal(0.0, volatility, n)
    returns = np.empty(n)
    returns[0] = shocks[0]
    for t in range(1, n):
        returns[t] = phi * returns[t - 1] + shocks[t]
    return returns


@pytest.fixture(scope="module")
def random_walk() -> Dataset:
    return make_dataset(make_ohlcv(N_CANDLES, seed=3), MLSettings())


@pytest.fixture(scope="module")
def planted_edge() -> Dataset:
    returns = ar1_log_returns(N_CANDLES, phi=AR_COEFFICIENT, seed=5)
    return make_dataset(make_ohlcv(N_CANDLES, seed=5, log_returns=returns), MLSettings())


@pytest.mark.parametrize("algorithm", ["logreg", "lightgbm"])
def test_random_walk_has_no_out_of_sample_edge(random_walk: Dataset, algorithm) -> None:
    result = run_walk_forward(
        random_walk, MLSettings(), algorithm=algorithm, compute=ComputeSettings()
    )
    assert len(result.folds) >= 5
    assert result.metrics.n > 10_000
    assert abs(result.metrics.roc_auc - 0.5) <= 0.03
    assert result.significance.p_value > 0.05
    assert not result.significance.is_significant()


@pytest.mark.parametrize("algorithm", ["logreg", "lightgbm"])
def test_planted_ar1_edge_is_found(planted_edge: Dataset, algorithm) -> None:
    result = run_walk_forward(
        planted_edge, MLSettings(), algorithm=algorithm, compute=ComputeSettings()
    )
    predictions = result.predictions
    # the ceiling: the true previous return as the score (about 0.63 for phi = 0.3)
    previous_return = planted_edge.forward_return.shift(1).loc[predictions.index]
    ceiling = roc_auc(predictions["y_true"], _to_unit(previous_return))
    assert 0.61 <= ceiling <= 0.65
    assert result.metrics.roc_auc >= 0.60
    assert result.metrics.roc_auc <= ceiling + 0.01  # better than the truth would be a leak
    low, _ = result.significance.roc_auc_ci
    assert low > 0.55
    assert result.importances["permutation"].idxmax() == "log_return_1"


def _to_unit(values: pd.Series) -> np.ndarray:
    """Map any score monotonically into [0, 1] (ROC-AUC only needs the order)."""
    ranks = values.rank(method="average").to_numpy()
    return (ranks - 1) / (len(ranks) - 1)


def test_same_config_twice_gives_identical_metrics(planted_edge: Dataset) -> None:
    ml = MLSettings(walk_forward={"max_folds": 3})  # type: ignore[arg-type]
    runs = [
        run_walk_forward(planted_edge, ml, algorithm="lightgbm", compute=ComputeSettings())
        for _ in range(2)
    ]
    assert runs[0].metrics == runs[1].metrics
    assert runs[0].significance == runs[1].significance
    pd.testing.assert_frame_equal(runs[0].predictions, runs[1].predictions)
    pd.testing.assert_frame_equal(runs[0].importances, runs[1].importances)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("algorithm", ["xgboost", "mlp"])
def test_other_models_find_the_planted_edge(planted_edge: Dataset, algorithm) -> None:
    ml = MLSettings(walk_forward={"max_folds": 2})  # type: ignore[arg-type]
    result = run_walk_forward(planted_edge, ml, algorithm=algorithm, compute=ComputeSettings())
    assert result.metrics.roc_auc >= 0.59
