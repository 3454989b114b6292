"""Out-of-sample `proba_up` for backtests: walk-forward per algorithm, or one registry model."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from core.errors import ConfigError, NotEnoughDataError
from core.settings import Settings
from core.timeframes import timeframe_to_ms
from core.types import ModelName
from ml.dataset import Dataset, make_dataset
from ml.evaluation import (
    Baselines,
    ClassificationMetrics,
    Significance,
    assess_significance,
    baseline_accuracies,
    classification_metrics,
)
from ml.predict import feature_settings_of, predict_history
from ml.registry import ModelArtifact, load_model
from ml.walk_forward import FoldResult, WalkForwardResult, run_walk_forward, walk_forward_splits
from strategy.feeds import PROBA_COLUMN

logger = logging.getLogger(__name__)

FoldProgress = Callable[[str, int, int], None]
"""Called with (algorithm, folds done, folds in total)."""


@dataclass(frozen=True, slots=True)
class ScoredModel:
    """Predictions of one model before trading (the classification side).

    Attributes:
        proba_up: probability for every candle given (NaN where the model made none).
        predictions: the predicted rows: `proba_up`, `y_true` (NaN when unknown),
            `threshold` (UP when proba_up >= it) and `fold` (1 for a registry model).
        folds: walk-forward folds (empty for a registry model).
        name: how reports name it: the algorithm (` h=N` when several horizons ran) or the
            registry model id.
        train_range: first and last training row of a registry model (None walk-forward).
    """

    algorithm: ModelName
    model_id: str | None
    horizon_bars: int
    name: str
    proba_up: pd.Series
    predictions: pd.DataFrame
    folds: tuple[FoldResult, ...]
    classification: ClassificationMetrics
    baselines: Baselines
    significance: Significance
    importances: pd.DataFrame
    train_range: tuple[pd.Timestamp, pd.Timestamp] | None
    fit_seconds: float


def score_walk_forward(
    candles: pd.DataFrame,
    settings: Settings,
    *,
    algorithms: Sequence[ModelName],
    horizons: Sequence[int] = (),
    progress: FoldProgress | None = None,
) -> tuple[ScoredModel, ...]:
    """Out-of-sample predictions of each algorithm at each label horizon over the same folds.

    `horizons` defaults to `ml.labels.horizon_bars`. With several horizons the purge gap of
    every run is the longest horizon, so all runs share the same test windows.
    `progress(name, done_folds, total_folds)` is called before the first fold and after each.
    """
    horizons = tuple(horizons) or (settings.ml.labels.horizon_bars,)
    gap = max(settings.ml.walk_forward.gap_bars, *horizons)
    scored = []
    for horizon in horizons:
        ml = settings.ml_for_training(horizon_bars=horizon)
        ml = ml.model_copy(
            update={"walk_forward": ml.walk_forward.model_copy(update={"gap_bars": gap})}
        )
        dataset = make_dataset(candles, ml)
        n_folds = len(walk_forward_splits(len(dataset.X), ml.walk_forward, horizon_bars=horizon))
        for algorithm in algorithms:
            name = algorithm if len(horizons) == 1 else f"{algorithm} h={horizon}"
            report = _fold_reporter(progress, name, n_folds)
            result = run_walk_forward(
                dataset, ml, algorithm=algorithm, compute=settings.compute, progress=report
            )
            scored.append(_from_walk_forward(result, candles, horizon_bars=horizon, name=name))
    return tuple(scored)


def _fold_reporter(
    progress: FoldProgress | None, algorithm: str, total: int
) -> Callable[[FoldResult], None]:
    done = 0
    if progress is not None:
        progress(algorithm, 0, total)

    def on_fold(_fold: FoldResult) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(algorithm, done, total)

    return on_fold


def _from_walk_forward(
    result: WalkForwardResult, candles: pd.DataFrame, *, horizon_bars: int, name: str
) -> ScoredModel:
    table = result.predictions
    predictions = pd.DataFrame(
        {
            PROBA_COLUMN: table["proba_up"].astype("float64"),
            "y_true": table["y_true"].astype("float64"),
            "threshold": table["threshold"].astype("float64"),
            "fold": table["fold"].astype("int64"),
        }
    )
    return ScoredModel(
        algorithm=result.algorithm,
        model_id=None,
        horizon_bars=horizon_bars,
        name=name,
        proba_up=predictions[PROBA_COLUMN].reindex(candles.index),
        predictions=predictions,
        folds=result.folds,
        classification=result.metrics,
        baselines=result.baselines,
        significance=result.significance,
        importances=result.importances,
        train_range=None,
        fit_seconds=result.fit_seconds,
    )


def score_registry_model(
    candles: pd.DataFrame, settings: Settings, *, timeframe: str, model_id: str
) -> ScoredModel:
    """Score a registry model over the candles with the live inference path (`predict_history`).

    Labels follow the model's own label settings. The accuracy baselines use the majority
    class of the model's training rows where the candles cover them (else UP).

    Raises:
        ModelError: the model is missing or corrupt.
        ConfigError: the model was trained on another timeframe.
        NotEnoughDataError: fewer than 2 labelled candles with a prediction.
    """
    artifact = load_model(settings.ml.registry_dir, model_id)
    manifest = artifact.manifest
    if manifest.timeframe != timeframe:
        raise ConfigError(
            f"model {model_id} was trained on {manifest.timeframe} candles, not {timeframe}; "
            f"pass --timeframe {manifest.timeframe} or another model"
        )
    started = time.perf_counter()
    proba = predict_history(artifact, candles).reindex(candles.index)
    dataset = _model_dataset(candles, settings, artifact)
    scored = proba.dropna().index.intersection(dataset.X.index)
    if len(scored) < 2:
        raise NotEnoughDataError(
            f"model {model_id} scored {len(scored)} labelled candles in the range; "
            f"it needs {len(candles) - len(proba.dropna())} candles of warm-up, widen the range"
        )
    # pydantic parses "...Z" with its own tzinfo; pandas slicing needs the same UTC everywhere
    train_range = (_utc(manifest.train_start), _utc(manifest.train_end))
    y, p = dataset.y.loc[scored], proba.loc[scored]
    baselines = _fixed_baselines(dataset, scored, train_range, horizon=_horizon(artifact))
    significance = assess_significance(
        y,
        p,
        threshold=manifest.threshold,
        baselines=baselines,
        block_bars=_bars_per_day(timeframe),
        seed=settings.ml.seed,
        horizon_bars=_horizon(artifact),
    )
    return ScoredModel(
        algorithm=manifest.algorithm,
        model_id=manifest.model_id,
        horizon_bars=_horizon(artifact),
        name=manifest.model_id,
        proba_up=proba,
        predictions=_registry_predictions(proba, dataset, threshold=manifest.threshold),
        folds=(),
        classification=classification_metrics(y, p, threshold=manifest.threshold),
        baselines=baselines,
        significance=significance,
        importances=_registry_importances(artifact),
        train_range=train_range,
        fit_seconds=time.perf_counter() - started,
    )


def _horizon(artifact: ModelArtifact) -> int:
    return artifact.manifest.labels.horizon_bars


def _registry_predictions(proba: pd.Series, dataset: Dataset, *, threshold: float) -> pd.DataFrame:
    """Every candle with a prediction; `y_true` NaN where the label is unknown (the last ones)."""
    predictions = pd.DataFrame({PROBA_COLUMN: proba.dropna()})
    predictions["y_true"] = dataset.y.reindex(predictions.index).astype("float64")
    predictions["threshold"] = threshold
    predictions["fold"] = 1
    return predictions


def _registry_importances(artifact: ModelArtifact) -> pd.DataFrame:
    """The manifest's native importances (permutation importance is not stored: NaN)."""
    native = pd.Series(artifact.manifest.feature_importance, dtype="float64")
    frame = pd.DataFrame({"native": native, "permutation": np.nan})
    frame.index.name = "feature"
    return frame.sort_values("native", ascending=False)


def _model_dataset(candles: pd.DataFrame, settings: Settings, artifact: ModelArtifact) -> Dataset:
    """Labels exactly as the model was trained (its own label and feature settings)."""
    labels = artifact.manifest.labels
    ml = settings.ml.model_copy(
        update={"labels": labels, "features": feature_settings_of(artifact)}
    )
    return make_dataset(candles, ml)


def _fixed_baselines(
    dataset: Dataset,
    rows: pd.Index,
    train_range: tuple[pd.Timestamp, pd.Timestamp],
    *,
    horizon: int,
) -> Baselines:
    """Baselines of a registry model: its training majority where the candles cover it, else UP."""
    previous = (dataset.forward_return.shift(horizon) > 0).astype(np.int64)
    trained = dataset.y.loc[train_range[0] : train_range[1]]
    majority = int(trained.mean() >= 0.5) if len(trained) else 1
    return baseline_accuracies(
        dataset.y.loc[rows], previous_direction=previous.loc[rows], train_majority=majority
    )


def _bars_per_day(timeframe: str) -> int:
    """Candles per day: the block length of the bootstrap (as in walk-forward)."""
    return max(1, 86_400_000 // timeframe_to_ms(timeframe))


def _utc(moment: datetime) -> pd.Timestamp:
    """A pandas UTC timestamp of any aware (or naive = UTC) datetime."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
