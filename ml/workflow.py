"""Training workflow: candles -> dataset -> walk-forward -> final model -> manifest -> registry."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.settings import MLSettings, Settings
from core.types import ModelId, ModelName
from data.schema import index_to_epoch_ms
from ml.dataset import Dataset, make_dataset
from ml.registry import (
    FoldSummary,
    ModelArtifact,
    ModelManifest,
    WalkForwardSummary,
    make_model_id,
    read_manifest,
    save_model,
)
from ml.training import FinalModel, fit_final_model
from ml.walk_forward import FoldResult, WalkForwardResult, run_walk_forward, walk_forward_splits

logger = logging.getLogger(__name__)

TRACKED_LIBRARIES = ("numpy", "pandas", "scikit-learn", "xgboost", "lightgbm", "joblib", "ta")


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    """What one `cryptopred train` produced."""

    model_id: ModelId
    manifest: ModelManifest
    walk_forward: WalkForwardResult
    final: FinalModel
    dataset: Dataset


def candles_sha256(candles: pd.DataFrame) -> str:
    """Hash of the candle values and open times, so a manifest names the exact data used."""
    digest = hashlib.sha256(index_to_epoch_ms(pd.DatetimeIndex(candles.index)).tobytes())
    digest.update(np.ascontiguousarray(candles.to_numpy(dtype="float64")).tobytes())
    return digest.hexdigest()


def config_hash(payload: Any) -> str:
    """Short stable hash of a JSON-able config payload.

    >>> config_hash({"b": 1, "a": 2}) == config_hash({"a": 2, "b": 1})
    True
    """
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ml_settings_hash(ml: MLSettings) -> str:
    """Hash of the ML settings that define a model (not paths)."""
    return config_hash(ml.model_dump(mode="json", exclude={"registry_dir"}))


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a pickled model depends on."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit, when running from a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH is intended
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def walk_forward_summary(result: WalkForwardResult) -> WalkForwardSummary:
    """Walk-forward metrics, baselines, significance and folds for the manifest."""
    return WalkForwardSummary(
        metrics=result.metrics.to_dict(),
        baselines=result.baselines.to_dict(),
        significance=result.significance.to_dict(),
        folds=[_fold_summary(fold) for fold in result.folds],
        fit_seconds=round(result.fit_seconds, 3),
    )


def _fold_summary(fold: FoldResult) -> FoldSummary:
    return FoldSummary(
        number=fold.number,
        train_start=fold.train_start.to_pydatetime(),
        train_end=fold.train_end.to_pydatetime(),
        test_start=fold.test_start.to_pydatetime(),
        test_end=fold.test_end.to_pydatetime(),
        n_train=fold.n_train,
        n_test=fold.n_test,
        metrics=fold.metrics.to_dict(),
        threshold=fold.threshold,
    )


def feature_ranges(X: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """(min, max) of each feature over the rows a model was trained on."""
    return {name: (float(X[name].min()), float(X[name].max())) for name in X.columns}


def _importance_dict(final: FinalModel) -> dict[str, float]:
    series = final.importances.dropna()
    return {str(name): float(value) for name, value in series.items()}


def build_manifest(
    *,
    final: FinalModel,
    walk_forward: WalkForwardResult | None,
    dataset: Dataset,
    candles: pd.DataFrame,
    ml: MLSettings,
    exchange_id: str,
    symbol: str,
    timeframe: str,
) -> ModelManifest:
    """The manifest saved next to a final model (its id is assigned by the registry)."""
    train_rows = dataset.X.loc[final.train_start : final.train_end]
    features = ml.features.model_dump(mode="json")
    return ModelManifest(
        model_id=make_model_id(symbol, timeframe, final.algorithm, final.train_end.to_pydatetime()),
        exchange=exchange_id,
        symbol=symbol,
        timeframe=timeframe,
        algorithm=final.algorithm,
        params=json.loads(json.dumps(final.params, default=str)),
        feature_names=list(final.feature_names),
        feature_config=ml.features,
        feature_config_hash=config_hash(features),
        labels=ml.labels,
        threshold=final.threshold,
        train_start=final.train_start.to_pydatetime(),
        train_end=final.train_end.to_pydatetime(),
        n_train_rows=final.n_train,
        candles_sha256=candles_sha256(candles),
        walk_forward=walk_forward_summary(walk_forward) if walk_forward else None,
        validation_metrics=final.validation_metrics.to_dict() if final.validation_metrics else None,
        feature_importance=_importance_dict(final),
        feature_ranges=feature_ranges(train_rows[list(final.feature_names)]),
        library_versions=library_versions(),
        git_commit=git_commit(),
        settings_hash=ml_settings_hash(ml),
        created_at=datetime.now(UTC),
    )


def train_model(
    candles: pd.DataFrame,
    settings: Settings,
    *,
    symbol: str,
    timeframe: str,
    algorithm: ModelName,
    tune: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingOutcome:
    """Walk-forward evaluate `algorithm`, fit the final model on the latest window, save it.

    `progress(done_folds, total_folds)` is called once before the first fold and after each.
    """
    dataset = make_dataset(candles, settings.ml)
    total = len(
        walk_forward_splits(
            len(dataset.X), settings.ml.walk_forward, horizon_bars=settings.ml.labels.horizon_bars
        )
    )
    done = 0

    def on_fold(_fold: FoldResult) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    result = run_walk_forward(
        dataset,
        settings.ml,
        algorithm=algorithm,
        compute=settings.compute,
        tune=tune,
        progress=on_fold,
    )
    final = fit_final_model(dataset, settings.ml, algorithm=algorithm, tune=tune)
    manifest = build_manifest(
        final=final,
        walk_forward=result,
        dataset=dataset,
        candles=candles,
        ml=settings.ml,
        exchange_id=settings.exchange.id,
        symbol=symbol,
        timeframe=timeframe,
    )
    model_id = save_model(
        ModelArtifact(estimator=final.estimator, manifest=manifest), settings.ml.registry_dir
    )
    saved = read_manifest(settings.ml.registry_dir, model_id)
    logger.info(
        "Trained %s: out-of-sample ROC-AUC %.4f accuracy %.4f over %d folds",
        model_id,
        result.metrics.roc_auc,
        result.metrics.accuracy,
        len(result.folds),
    )
    return TrainingOutcome(model_id, saved, result, final, dataset)
