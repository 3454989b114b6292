"""Purged walk-forward splits and the out-of-sample evaluation that runs a model over them."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.errors import ConfigError, DataValidationError, NotEnoughDataError
from core.settings import ComputeSettings, MLSettings, WalkForwardSettings
from core.types import ModelName
from ml.compute import map_shared
from ml.dataset import Dataset
from ml.evaluation import (
    Baselines,
    ClassificationMetrics,
    Significance,
    assess_significance,
    baseline_accuracies,
    classification_metrics,
)
from ml.training import fit_window

logger = logging.getLogger(__name__)

Positions = npt.NDArray[np.int64]


Ranges = npt.NDArray[np.int64]  # shape (k, 2): half-open [start, stop) row ranges


def _as_ranges(rows: Positions) -> Ranges:
    """Increasing row positions as runs of consecutive rows: O(holes), not O(rows).

    >>> _as_ranges(np.array([0, 1, 2, 5, 6, 9])).tolist()
    [[0, 3], [5, 7], [9, 10]]
    """
    if len(rows) == 0:
        return np.empty((0, 2), dtype=np.int64)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = rows[np.concatenate(([0], breaks))]
    stops = rows[np.concatenate((breaks - 1, [len(rows) - 1]))] + 1
    return np.column_stack((starts, stops)).astype(np.int64)


def _positions(ranges: Ranges) -> Positions:
    """The row positions of `_as_ranges` back, in order."""
    if len(ranges) == 0:
        return np.empty(0, dtype=np.int64)
    return np.concatenate([np.arange(start, stop, dtype=np.int64) for start, stop in ranges])


@dataclasses.dataclass(frozen=True, slots=True)
class Fold:
    """Rows of one fold: fit rows, validation slice and test window.

    Stored as [start, stop) row ranges (a few per fold), so the folds of an expanding
    walk-forward take memory linear in their number, not in the sum of their windows;
    `train`, `validation` and `test` give the integer positions when asked.
    """

    number: int
    train_ranges: Ranges
    validation_ranges: Ranges
    test_ranges: Ranges

    @property
    def train(self) -> Positions:
        """Fit rows (before dropping dead-band rows)."""
        return _positions(self.train_ranges)

    @property
    def validation(self) -> Positions:
        """Validation rows (empty without `validation_bars`)."""
        return _positions(self.validation_ranges)

    @property
    def test(self) -> Positions:
        """Test rows: one contiguous window."""
        return _positions(self.test_ranges)


def _fold(number: int, train: Positions, validation: Positions, test: Positions) -> Fold:
    return Fold(number, _as_ranges(train), _as_ranges(validation), _as_ranges(test))


def _window_folds(n_rows: int, cfg: WalkForwardSettings, gap: int) -> list[Fold]:
    """Expanding/rolling folds: window [start, end) then `gap` purged rows, then the test window."""
    if cfg.validation_bars and cfg.validation_bars + gap >= cfg.train_bars:
        raise ConfigError(
            f"walk_forward.validation_bars ({cfg.validation_bars}) + purge gap ({gap}) leave no "
            f"training rows in train_bars ({cfg.train_bars}); lower validation_bars"
        )
    min_test = max(1, cfg.step_bars // 2)  # a last, shorter test window needs half a step
    folds: list[Fold] = []
    embargoed = np.zeros(n_rows, dtype=bool)
    for test_start in range(cfg.train_bars + gap, n_rows, cfg.step_bars):
        test_end = min(test_start + cfg.step_bars, n_rows)
        if test_end - test_start < min_test:
            logger.debug("Dropping a last test window of %d rows", test_end - test_start)
            break
        window_end = test_start - gap
        window_start = 0 if cfg.mode == "expanding" else window_end - cfg.train_bars
        rows = np.arange(window_start, window_end, dtype=np.int64)
        rows = rows[~embargoed[rows]]
        val_start = window_end - cfg.validation_bars
        fit_end = val_start - gap if cfg.validation_bars else window_end
        folds.append(
            _fold(
                len(folds) + 1,
                train=rows[rows < fit_end],
                validation=rows[rows >= val_start] if cfg.validation_bars else rows[:0],
                test=np.arange(test_start, test_end, dtype=np.int64),
            )
        )
        embargoed[test_end : test_end + cfg.embargo_bars] = True
    return folds


def _holdout_fold(n_rows: int, cfg: WalkForwardSettings, gap: int) -> list[Fold]:
    """One chronological train/validation/test fold from `holdout_fractions`, purged by `gap`."""
    train_share, val_share, _ = cfg.holdout_fractions
    val_start = int(n_rows * train_share)
    val_end = int(n_rows * (train_share + val_share))
    fold = _fold(
        1,
        train=np.arange(0, max(val_start - gap, 0), dtype=np.int64),
        validation=np.arange(val_start, val_end, dtype=np.int64),
        test=np.arange(min(val_end + gap, n_rows), n_rows, dtype=np.int64),
    )
    if min(len(fold.train), len(fold.validation), len(fold.test)) < 2:
        raise NotEnoughDataError(
            f"holdout split of {n_rows} rows with fractions {cfg.holdout_fractions} and a purge "
            f"gap of {gap} leaves {len(fold.train)} train, {len(fold.validation)} validation and "
            f"{len(fold.test)} test rows; provide more candles"
        )
    return [fold]


def walk_forward_splits(n_rows: int, cfg: WalkForwardSettings, *, horizon_bars: int) -> list[Fold]:
    """Purged chronological folds; every fit/validation row t satisfies t + horizon < test start.

    The purge gap is `max(gap_bars, horizon_bars)` and also separates fit rows from the
    validation slice. Rows within `embargo_bars` after a test window never train later folds.
    `max_folds` keeps the most recent folds (renumbered from 1).

    Raises:
        NotEnoughDataError: not even one fold fits in `n_rows`.
    """
    if horizon_bars < 1:
        raise ValueError(f"horizon_bars must be >= 1, got {horizon_bars}")
    gap = max(cfg.gap_bars, horizon_bars)
    if cfg.mode == "holdout":
        return _holdout_fold(n_rows, cfg, gap)
    folds = _window_folds(n_rows, cfg, gap)
    if not folds:
        raise NotEnoughDataError(
            f"walk-forward needs train_bars ({cfg.train_bars}) + gap ({gap}) + at least "
            f"{max(1, cfg.step_bars // 2)} test rows, but only {n_rows} rows have features and "
            "labels; provide more candles or lower walk_forward.train_bars / step_bars"
        )
    if cfg.max_folds is not None:
        folds = folds[-cfg.max_folds :]
    return [dataclasses.replace(fold, number=i) for i, fold in enumerate(folds, start=1)]


@dataclasses.dataclass(frozen=True, slots=True)
class FoldResult:
    """Boundaries (timestamps), sizes, test metrics and choices of one fold."""

    number: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    validation_start: pd.Timestamp | None
    validation_end: pd.Timestamp | None
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    n_train: int
    n_test: int
    metrics: ClassificationMetrics
    best_params: dict[str, Any]
    threshold: float
    fit_seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """Out-of-sample predictions of every fold, with metrics, baselines and significance."""

    algorithm: ModelName
    predictions: pd.DataFrame  # fold, proba_up, y_true, forward_return, trainable, threshold
    folds: tuple[FoldResult, ...]
    metrics: ClassificationMetrics
    baselines: Baselines
    significance: Significance
    importances: pd.DataFrame
    fit_seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class _FoldData:
    """The one copy of the dataset every fold reads (scattered once to Dask workers)."""

    X: pd.DataFrame
    y: pd.Series
    info: pd.DataFrame  # y_true, forward_return, trainable: the per-row test columns
    trainable: npt.NDArray[np.bool_]


@dataclasses.dataclass(frozen=True, slots=True)
class _FoldTask:
    """One fold as small picklable values: settings and row ranges into the shared `_FoldData`.

    Holding ranges instead of frames keeps the tasks' memory linear in the candles: a fold's
    frames exist only while `_run_fold` runs it.
    """

    number: int
    algorithm: ModelName
    ml: MLSettings
    tune: bool
    train: Ranges  # fit rows before dropping dead-band rows
    validation: Ranges
    test: Ranges


@dataclasses.dataclass(frozen=True, slots=True)
class _FoldOutput:
    result: FoldResult
    predictions: pd.DataFrame
    native: pd.Series
    permutation: pd.Series
    train_majority: int


def _run_fold(data: _FoldData, task: _FoldTask) -> _FoldOutput:
    """Slice one fold out of `data`, fit it on its trainable rows, predict its test window."""
    fit_rows, val_rows = _positions(task.train), _positions(task.validation)
    fit_rows = fit_rows[data.trainable[fit_rows]]
    val_rows = val_rows[data.trainable[val_rows]]
    test_rows = _positions(task.test)
    X_fit, y_fit = data.X.iloc[fit_rows], data.y.iloc[fit_rows]
    X_val, X_test = data.X.iloc[val_rows], data.X.iloc[test_rows]
    fitted = fit_window(
        X_fit,
        y_fit,
        X_val,
        data.y.iloc[val_rows],
        task.ml,
        algorithm=task.algorithm,
        tune=task.tune,
        what=f"fold {task.number}",
    )
    proba_up = fitted.estimator.predict_proba(X_test)[:, 1]
    predictions = data.info.iloc[test_rows].assign(fold=task.number, proba_up=proba_up)
    predictions["threshold"] = fitted.threshold
    predictions = predictions[
        ["fold", "proba_up", "y_true", "forward_return", "trainable", "threshold"]
    ]
    val_index = X_val.index
    result = FoldResult(
        number=task.number,
        train_start=X_fit.index[0],
        train_end=X_fit.index[-1],
        validation_start=val_index[0] if len(val_index) else None,
        validation_end=val_index[-1] if len(val_index) else None,
        test_start=X_test.index[0],
        test_end=X_test.index[-1],
        n_train=len(X_fit),
        n_test=len(X_test),
        metrics=classification_metrics(predictions["y_true"], proba_up, threshold=fitted.threshold),
        best_params=fitted.best_params,
        threshold=fitted.threshold,
        fit_seconds=fitted.fit_seconds,
    )
    majority = int(np.asarray(y_fit).mean() >= 0.5)
    return _FoldOutput(
        result, predictions, fitted.native_importance, fitted.permutation_importance, majority
    )


def _validated(dataset: Dataset) -> None:
    X = dataset.X
    lengths = {len(X), len(dataset.y), len(dataset.forward_return), len(dataset.trainable)}
    if len(lengths) != 1:
        raise DataValidationError(
            f"dataset parts differ in length (X {len(X)}, y {len(dataset.y)}, forward_return "
            f"{len(dataset.forward_return)}, trainable {len(dataset.trainable)}); rebuild it "
            "with ml.dataset.make_dataset"
        )
    bad = [str(c) for c in X.columns if not np.isfinite(X[c].to_numpy(dtype=np.float64)).all()]
    if bad:
        first = X.index[~np.isfinite(X[bad[0]].to_numpy(dtype=np.float64))][0]
        raise DataValidationError(
            f"features {bad} hold NaN/inf (first in {bad[0]!r} at {first}); fix the feature "
            "computation, models need finite inputs"
        )
    if not np.isin(dataset.y.to_numpy(), (0, 1)).all():
        raise DataValidationError("labels must be 0 (DOWN) or 1 (UP); rebuild the dataset")


def _fold_data(dataset: Dataset) -> _FoldData:
    info = pd.DataFrame(
        {
            "y_true": dataset.y.astype(np.int64),
            "forward_return": dataset.forward_return.astype(np.float64),
            "trainable": dataset.trainable.astype(bool),
        },
        index=dataset.X.index,
    )
    trainable = dataset.trainable.to_numpy(dtype=bool)
    return _FoldData(X=dataset.X, y=dataset.y, info=info, trainable=trainable)


def _make_tasks(
    folds: list[Fold], ml: MLSettings, algorithm: ModelName, tune: bool
) -> list[_FoldTask]:
    return [
        _FoldTask(
            number=fold.number,
            algorithm=algorithm,
            ml=ml,
            tune=tune,
            train=fold.train_ranges,
            validation=fold.validation_ranges,
            test=fold.test_ranges,
        )
        for fold in folds
    ]


def _bars_per_day(index: pd.Index) -> int:
    """Bars in one day, from the median spacing of the index (the bootstrap block length)."""
    if len(index) < 2:
        return 1
    spacing_seconds = pd.Timedelta(pd.Series(index).diff().median()).total_seconds()
    return max(1, round(86_400 / spacing_seconds)) if spacing_seconds > 0 else 1


def _log_fold(output: _FoldOutput, n_folds: int) -> None:
    r = output.result
    logger.info(
        "Fold %d/%d train %s..%s (n=%d) test %s..%s (n=%d): roc_auc=%.3f accuracy=%.3f (%.1fs)",
        r.number,
        n_folds,
        r.train_start,
        r.train_end,
        r.n_train,
        r.test_start,
        r.test_end,
        r.n_test,
        r.metrics.roc_auc,
        r.metrics.accuracy,
        r.fit_seconds,
    )


def _baselines(
    dataset: Dataset, predictions: pd.DataFrame, outputs: list[_FoldOutput], horizon: int
) -> Baselines:
    # persistence: the direction of the last completed `horizon`-bar move, known at row t
    previous = (dataset.forward_return.shift(horizon) > 0).astype(np.int64)
    majority = np.concatenate(
        [np.full(len(out.predictions), out.train_majority) for out in outputs]
    )
    return baseline_accuracies(
        predictions["y_true"],
        previous_direction=previous.loc[predictions.index],
        train_majority=majority,
    )


def _importances(outputs: list[_FoldOutput]) -> pd.DataFrame:
    """Mean over folds of native and permutation importance, most important first."""
    importances = pd.DataFrame(
        {
            "native": pd.concat([out.native for out in outputs], axis=1).mean(axis=1),
            "permutation": pd.concat([out.permutation for out in outputs], axis=1).mean(axis=1),
        }
    ).sort_values("permutation", ascending=False)
    importances.index.name = "feature"
    return importances


def run_walk_forward(
    dataset: Dataset,
    ml: MLSettings,
    *,
    algorithm: ModelName,
    compute: ComputeSettings,
    tune: bool | None = None,
    progress: Callable[[FoldResult], None] | None = None,
) -> WalkForwardResult:
    """Fit `algorithm` fold by fold and score every test row out of sample.

    Each fold's pipeline is fitted on its trainable training rows only; dead-band rows are
    still predicted and scored. `tune=None` follows `ml.tuning.enabled`. `progress` is called
    with each finished fold, in order.
    """
    started = time.perf_counter()
    _validated(dataset)
    horizon = ml.labels.horizon_bars
    folds = walk_forward_splits(len(dataset.X), ml.walk_forward, horizon_bars=horizon)
    tasks = _make_tasks(folds, ml, algorithm, ml.tuning.enabled if tune is None else tune)
    del folds  # the tasks' row ranges replace the folds' position arrays

    def on_result(output: _FoldOutput) -> None:
        _log_fold(output, len(tasks))
        if progress is not None:
            progress(output.result)

    data = _fold_data(dataset)
    outputs = map_shared(_run_fold, data, tasks, compute, on_result=on_result)
    predictions = pd.concat([out.predictions for out in outputs])
    predictions.index.name = "timestamp"
    y_true, proba = predictions["y_true"], predictions["proba_up"]
    thresholds = predictions["threshold"].to_numpy()
    baselines = _baselines(dataset, predictions, outputs, horizon)
    significance = assess_significance(
        y_true,
        proba,
        threshold=thresholds,
        baselines=baselines,
        block_bars=_bars_per_day(dataset.X.index),
        seed=ml.seed,
        horizon_bars=horizon,
    )
    return WalkForwardResult(
        algorithm=algorithm,
        predictions=predictions,
        folds=tuple(out.result for out in outputs),
        metrics=classification_metrics(y_true, proba, threshold=thresholds),
        baselines=baselines,
        significance=significance,
        importances=_importances(outputs),
        fit_seconds=time.perf_counter() - started,
    )
