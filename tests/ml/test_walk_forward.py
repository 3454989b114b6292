"""Tests of the purged walk-forward splits and of `run_walk_forward` on small hand-made datasets."""

from __future__ import annotations

import itertools
import logging
import pickle
from dataclasses import fields
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from core.errors import ConfigError, DataValidationError, NotEnoughDataError
from core.settings import ComputeSettings, MLSettings, WalkForwardSettings
from ml import estimators, walk_forward
from ml.dataset import Dataset
from ml.training import fit_window
from ml.walk_forward import Fold, FoldResult, run_walk_forward, walk_forward_splits
from tests.conftest import log_has
from tests.factories import make_settings

SMALL_WF = {"train_bars": 500, "validation_bars": 100, "step_bars": 200}


def make_hand_dataset(
    n: int = 1200, *, seed: int = 0, phi: float = 0.0, deadband: float = 0.0
) -> Dataset:
    """A small dataset of lagged returns (+ a near copy and noise) of an AR(1) return series."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 0.01, n + 4)
    returns = np.zeros(n + 4)
    for t in range(1, n + 4):
        returns[t] = phi * returns[t - 1] + shocks[t]
    index = pd.date_range("2022-01-01", periods=n + 4, freq="h", tz="UTC", name="timestamp")
    r = pd.Series(returns, index=index)
    X = pd.DataFrame(
        {
            "ret_1": r,
            "ret_1_copy": 3 * r + rng.normal(0, 1e-5, n + 4),
            "ret_2": r.shift(1),
            "ret_3": r.shift(2),
            "noise": rng.normal(size=n + 4),
        }
    )
    forward = np.expm1(r.shift(-1))
    rows = slice(3, n + 3)
    return Dataset(
        X=X.iloc[rows],
        y=(forward.iloc[rows] > 0).astype("int64"),
        forward_return=forward.iloc[rows],
        trainable=(forward.iloc[rows].abs() >= deadband).rename("trainable"),
        warmup_rows_dropped=3,
        unlabeled_rows_dropped=1,
    )


def small_ml(**walk_forward: Any) -> MLSettings:
    return make_settings(
        ml={"walk_forward": {**SMALL_WF, **walk_forward}, "model": {"algorithm": "logreg"}}
    ).ml


# ----------------------------------------------------------------------------- splits
def _assert_purged(folds: list[Fold], horizon: int, embargo: int) -> None:
    seen_test: set[int] = set()
    for fold in folds:
        first_test = fold.test.min()
        assert len(fold.train) > 0 and len(fold.test) > 0
        assert fold.train.max() + horizon < first_test
        if len(fold.validation):
            assert fold.validation.max() + horizon < first_test
            assert fold.train.max() + horizon < fold.validation.min()  # purged from validation
        assert np.all(np.diff(fold.test) == 1)
        assert not seen_test & set(fold.test.tolist()), "test windows overlap"
        seen_test |= set(fold.test.tolist())
    for earlier, later in itertools.combinations(folds, 2):
        embargoed = set(range(earlier.test.max() + 1, earlier.test.max() + 1 + embargo))
        used = set(later.train.tolist()) | set(later.validation.tolist())
        assert not embargoed & used, f"fold {later.number} trains on embargoed rows"


@pytest.mark.parametrize(
    ("mode", "gap_bars", "horizon", "embargo", "validation_bars"),
    [
        (mode, gap, horizon, embargo, val)
        for mode in ("expanding", "rolling")
        for gap, horizon in ((1, 1), (5, 3), (1, 4))
        for embargo in (0, 30)
        for val in (0, 60)
    ],
)
def test_walk_forward_splits_respect_gap(mode, gap_bars, horizon, embargo, validation_bars) -> None:
    cfg = WalkForwardSettings(
        mode=mode,
        train_bars=300,
        validation_bars=validation_bars,
        step_bars=100,
        gap_bars=gap_bars,
        embargo_bars=embargo,
    )
    folds = walk_forward_splits(1000, cfg, horizon_bars=horizon)
    gap = max(gap_bars, horizon)
    assert [f.number for f in folds] == list(range(1, len(folds) + 1))
    assert folds[0].test[0] == 300 + gap
    assert all(len(f.test) == 100 for f in folds[:-1])
    assert len(folds[-1].test) >= 50
    _assert_purged(folds, horizon, embargo)
    for fold in folds:
        assert len(fold.validation) <= validation_bars
        window_end = fold.test[0] - gap
        window_start = 0 if mode == "expanding" else window_end - 300
        assert fold.train.min() >= window_start
        if embargo == 0:
            assert len(fold.validation) == validation_bars
            expected_fit = window_end - window_start - validation_bars
            assert len(fold.train) == expected_fit - (gap if validation_bars else 0)


def test_walk_forward_splits_sizes_as_configured() -> None:
    cfg = WalkForwardSettings(mode="rolling", train_bars=500, validation_bars=100, step_bars=200)
    folds = walk_forward_splits(1601, cfg, horizon_bars=1)
    # tests start at 501, 701, ... ; the last window (1501..1600) has 100 >= 200 // 2 rows
    assert [(f.test[0], len(f.test)) for f in folds] == [
        (501, 200),
        (701, 200),
        (901, 200),
        (1101, 200),
        (1301, 200),
        (1501, 100),
    ]
    assert {len(f.train) for f in folds} == {399}  # 500 - 100 validation - 1 purge
    assert folds[0].validation.tolist() == list(range(400, 500))
    assert folds[1].train[0] == 200 and folds[1].train[-1] == 598


def test_walk_forward_splits_drop_a_tiny_last_window_and_keep_last_folds() -> None:
    cfg = WalkForwardSettings(train_bars=500, validation_bars=0, step_bars=200)
    folds = walk_forward_splits(1580, cfg, horizon_bars=1)
    assert folds[-1].test[-1] == 1500  # 1501..1579 (79 rows) < half a step: dropped
    kept = walk_forward_splits(1580, cfg.model_copy(update={"max_folds": 2}), horizon_bars=1)
    assert [f.number for f in kept] == [1, 2]
    assert kept[-1].test.tolist() == folds[-1].test.tolist()
    assert kept[0].test.tolist() == folds[-2].test.tolist()


def test_walk_forward_splits_holdout_is_one_purged_70_15_15_fold() -> None:
    cfg = WalkForwardSettings(mode="holdout", gap_bars=2)
    (fold,) = walk_forward_splits(1000, cfg, horizon_bars=1)
    assert (fold.train[0], fold.train[-1]) == (0, 697)
    assert (fold.validation[0], fold.validation[-1]) == (700, 849)
    assert (fold.test[0], fold.test[-1]) == (852, 999)
    _assert_purged([fold], horizon=2, embargo=0)


def test_walk_forward_splits_not_enough_data_names_numbers() -> None:
    cfg = WalkForwardSettings(train_bars=500, step_bars=200, validation_bars=0)
    with pytest.raises(NotEnoughDataError, match=r"train_bars \(500\).*only 550 rows"):
        walk_forward_splits(550, cfg, horizon_bars=1)
    with pytest.raises(NotEnoughDataError, match="holdout"):
        walk_forward_splits(5, WalkForwardSettings(mode="holdout"), horizon_bars=1)


def test_walk_forward_splits_validation_must_leave_training_rows() -> None:
    cfg = WalkForwardSettings(train_bars=100, validation_bars=100, step_bars=50)
    with pytest.raises(ConfigError, match="validation_bars"):
        walk_forward_splits(1000, cfg, horizon_bars=1)


# ----------------------------------------------------------------------------- leakage spies
class SpyScaler(StandardScaler):
    """A StandardScaler that records the timestamps of the rows it is fitted on."""

    fitted_on: ClassVar[list[pd.Index]] = []

    def fit(self, X, y=None, sample_weight=None):
        SpyScaler.fitted_on.append(X.index)
        return super().fit(X, y, sample_weight)


class SpyFilter(estimators.CorrelationFilter):
    """A CorrelationFilter that records the timestamps of the rows it is fitted on."""

    fitted_on: ClassVar[list[pd.Index]] = []

    def fit(self, X, y=None):
        SpyFilter.fitted_on.append(X.index)
        return super().fit(X, y)


def _expected_fit_rows(dataset: Dataset, ml: MLSettings) -> list[pd.Index]:
    folds = walk_forward_splits(len(dataset.X), ml.walk_forward, horizon_bars=1)
    trainable = dataset.trainable.to_numpy()
    return [dataset.X.index[f.train[trainable[f.train]]] for f in folds]


def test_run_walk_forward_scaler_sees_only_fold_training_rows(monkeypatch) -> None:
    monkeypatch.setitem(estimators.SCALERS, "standard", SpyScaler)
    monkeypatch.setattr(SpyScaler, "fitted_on", [])
    dataset = make_hand_dataset(deadband=0.004)
    ml = small_ml()
    result = run_walk_forward(dataset, ml, algorithm="logreg", compute=ComputeSettings())
    expected = _expected_fit_rows(dataset, ml)
    assert len(SpyScaler.fitted_on) == len(expected) == len(result.folds)
    for fitted, rows, fold in zip(SpyScaler.fitted_on, expected, result.folds, strict=True):
        assert fitted.equals(rows)
        assert fitted.max() < fold.validation_start  # never a validation or test row
        assert dataset.trainable.loc[fitted].all()  # dead-band rows never fitted


def test_run_walk_forward_selector_sees_only_fold_training_rows(monkeypatch) -> None:
    monkeypatch.setattr(estimators, "CorrelationFilter", SpyFilter)
    monkeypatch.setattr(SpyFilter, "fitted_on", [])
    dataset = make_hand_dataset(deadband=0.004)
    ml = small_ml().model_copy(
        update={"preprocessing": MLSettings().preprocessing.model_copy(update={"scaler": "none"})}
    )
    run_walk_forward(dataset, ml, algorithm="logreg", compute=ComputeSettings())
    expected = _expected_fit_rows(dataset, ml)
    assert len(SpyFilter.fitted_on) == len(expected)
    for fitted, rows in zip(SpyFilter.fitted_on, expected, strict=True):
        assert fitted.equals(rows)


# ----------------------------------------------------------------------------- run_walk_forward
def test_run_walk_forward_predicts_every_test_row_including_deadband() -> None:
    dataset = make_hand_dataset(deadband=0.004)
    assert (~dataset.trainable).sum() > 100
    ml = small_ml()
    result = run_walk_forward(dataset, ml, algorithm="logreg", compute=ComputeSettings())
    folds = walk_forward_splits(len(dataset.X), ml.walk_forward, horizon_bars=1)
    test_rows = np.concatenate([f.test for f in folds])
    predictions = result.predictions
    assert predictions.index.equals(dataset.X.index[test_rows])
    assert predictions.index.name == "timestamp"
    assert list(predictions.columns) == [
        "fold",
        "proba_up",
        "y_true",
        "forward_return",
        "trainable",
        "threshold",
    ]
    assert (~predictions["trainable"]).sum() > 20
    assert result.metrics.n == len(test_rows)
    assert [f.n_test for f in result.folds] == [len(f.test) for f in folds]
    assert predictions["y_true"].equals(dataset.y.iloc[test_rows].rename("y_true"))


def test_run_walk_forward_reports_baselines_significance_importances() -> None:
    dataset = make_hand_dataset(phi=0.3, n=1500)
    result = run_walk_forward(dataset, small_ml(), algorithm="logreg", compute=ComputeSettings())
    assert result.metrics.roc_auc > 0.55  # planted AR(1) edge is found
    predictions = result.predictions
    previous = (dataset.forward_return.shift(1) > 0).loc[predictions.index]
    expected_persistence = float(np.mean(previous.to_numpy() == predictions["y_true"].to_numpy()))
    assert result.baselines.persistence == pytest.approx(expected_persistence)
    assert result.significance.baseline == result.baselines.best_name
    low, high = result.significance.roc_auc_ci
    assert low < result.metrics.roc_auc < high
    assert result.significance.block_bars == 24
    assert result.importances.index.name == "feature"
    assert result.importances["permutation"].idxmax() in {"ret_1", "ret_1_copy"}
    assert result.importances.loc["ret_1_copy", "native"] == 0.0  # filtered out as a copy
    assert result.folds[0].validation_end < result.folds[0].test_start


def test_run_walk_forward_same_config_twice_is_identical() -> None:
    dataset = make_hand_dataset(phi=0.2)
    ml = small_ml()
    first = run_walk_forward(dataset, ml, algorithm="lightgbm", compute=ComputeSettings())
    second = run_walk_forward(dataset, ml, algorithm="lightgbm", compute=ComputeSettings())
    assert first.metrics == second.metrics
    pd.testing.assert_frame_equal(first.predictions, second.predictions)


def test_run_walk_forward_progress_and_log_per_fold(caplog) -> None:
    seen: list[FoldResult] = []
    with caplog.at_level(logging.INFO, logger="ml.walk_forward"):
        result = run_walk_forward(
            make_hand_dataset(),
            small_ml(),
            algorithm="logreg",
            compute=ComputeSettings(),
            progress=seen.append,
        )
    assert [f.number for f in seen] == [f.number for f in result.folds] == [1, 2, 3]
    assert log_has(caplog, "Fold 2/3 train 2022-01-01 03:00:00+00:00", logging.INFO)
    assert log_has(caplog, "roc_auc=")


def test_run_walk_forward_shuffled_labels_give_coin_flip_auc() -> None:
    dataset = make_hand_dataset(phi=0.3, n=3000)
    rng = np.random.default_rng(11)
    shuffled = pd.Series(rng.permutation(dataset.y.to_numpy()), index=dataset.y.index)
    noise = Dataset(
        X=dataset.X,
        y=shuffled,
        forward_return=dataset.forward_return,
        trainable=dataset.trainable,
        warmup_rows_dropped=0,
        unlabeled_rows_dropped=0,
    )
    result = run_walk_forward(noise, small_ml(), algorithm="logreg", compute=ComputeSettings())
    assert abs(result.metrics.roc_auc - 0.5) < 0.04
    assert result.significance.p_value > 0.05


def test_run_walk_forward_tuned_threshold_and_isotonic_calibration() -> None:
    ml = small_ml().model_copy(
        update={
            "calibration": MLSettings().calibration.model_copy(
                update={"method": "isotonic", "tune_threshold": True}
            )
        }
    )
    result = run_walk_forward(
        make_hand_dataset(phi=0.2), ml, algorithm="logreg", compute=ComputeSettings()
    )
    thresholds = result.predictions.groupby("fold")["threshold"].first()
    assert thresholds.tolist() == [f.threshold for f in result.folds]
    assert all(0.4 <= t <= 0.6 for t in thresholds)


def test_run_walk_forward_rejects_non_finite_features() -> None:
    dataset = make_hand_dataset()
    X = dataset.X.copy()
    X.iloc[10, 2] = np.nan
    broken = Dataset(X, dataset.y, dataset.forward_return, dataset.trainable, 0, 0)
    with pytest.raises(DataValidationError, match=r"\['ret_2'\].*2022-01-01 13:00"):
        run_walk_forward(broken, small_ml(), algorithm="logreg", compute=ComputeSettings())


def test_run_walk_forward_tuning_needs_validation_rows() -> None:
    with pytest.raises(ConfigError, match="validation_bars > 0"):
        run_walk_forward(
            make_hand_dataset(),
            small_ml(validation_bars=0),
            algorithm="logreg",
            compute=ComputeSettings(),
            tune=True,
        )


@pytest.mark.slow
def test_run_walk_forward_parallel_matches_sequential() -> None:
    dataset, ml = make_hand_dataset(phi=0.2), small_ml()
    sequential = run_walk_forward(dataset, ml, algorithm="logreg", compute=ComputeSettings())
    parallel = run_walk_forward(dataset, ml, algorithm="logreg", compute=ComputeSettings(n_jobs=2))
    pd.testing.assert_frame_equal(sequential.predictions, parallel.predictions)


def test_run_walk_forward_holdout_mode_scores_the_last_15_percent() -> None:
    dataset = make_hand_dataset(phi=0.2, n=1000)
    result = run_walk_forward(
        dataset, small_ml(mode="holdout"), algorithm="logreg", compute=ComputeSettings()
    )
    (fold,) = result.folds
    assert fold.n_test == 1000 - 850 - 1
    assert fold.validation_start == dataset.X.index[700]
    assert result.predictions.index[0] == dataset.X.index[851]


# ----------------------------------------------------------------------------- linear memory
def test_fold_ranges_round_trip_any_increasing_positions() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        rows = np.flatnonzero(rng.random(300) < rng.random())
        ranges = walk_forward._as_ranges(rows)
        assert ranges.shape == (len(ranges), 2)
        np.testing.assert_array_equal(walk_forward._positions(ranges), rows)


def test_fold_tasks_hold_row_ranges_not_frames() -> None:
    """Expanding folds: a task's pickle does not grow with its training window (issue 13)."""
    dataset = make_hand_dataset(n=6000)
    ml = small_ml(step_bars=100, embargo_bars=3)
    folds = walk_forward_splits(len(dataset.X), ml.walk_forward, horizon_bars=1)
    tasks = walk_forward._make_tasks(folds, ml, "logreg", False)
    assert len(tasks) > 50
    for task in tasks:
        assert not any(
            isinstance(getattr(task, f.name), pd.DataFrame | pd.Series) for f in fields(task)
        )
    first, last = (len(pickle.dumps(task)) for task in (tasks[0], tasks[-1]))
    assert len(folds[-1].train) > 10 * len(folds[0].train)
    # one extra [start, stop) pair per embargo hole; frames would add 48 bytes per training row
    assert last - first < 16 * len(tasks) + 200
    assert last < dataset.X.iloc[:1000].memory_usage().sum()


def test_run_walk_forward_last_fold_equals_a_direct_fit_of_its_rows() -> None:
    dataset = make_hand_dataset(phi=0.2, deadband=0.004)
    ml = small_ml(embargo_bars=2)
    result = run_walk_forward(dataset, ml, algorithm="logreg", compute=ComputeSettings())
    fold = walk_forward_splits(len(dataset.X), ml.walk_forward, horizon_bars=1)[-1]
    trainable = dataset.trainable.to_numpy()
    fit_rows, val_rows = fold.train[trainable[fold.train]], fold.validation
    val_rows = val_rows[trainable[val_rows]]
    fitted = fit_window(
        dataset.X.iloc[fit_rows],
        dataset.y.iloc[fit_rows],
        dataset.X.iloc[val_rows],
        dataset.y.iloc[val_rows],
        ml,
        algorithm="logreg",
        tune=False,
    )
    expected = fitted.estimator.predict_proba(dataset.X.iloc[fold.test])[:, 1]
    last = result.predictions[result.predictions["fold"] == fold.number]
    np.testing.assert_array_equal(last["proba_up"].to_numpy(), expected)
    assert last.index.equals(dataset.X.index[fold.test])
    assert result.folds[-1].n_train == len(fit_rows)
