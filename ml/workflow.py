"""Training workflow: candles -> dataset -> walk-forward -> final model -> manifest -> registry."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
from collections.abc import Callable, Sequence
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
from ml.policy_validation import validate_policy
from ml.registry import (
    FoldSummary,
    ModelArtifact,
    ModelManifest,
    ValidatedPolicy,
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


def walk_forward_model(
    candles: pd.DataFrame,
    settings: Settings,
    *,
    algorithm: ModelName,
    tune: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Dataset, WalkForwardResult]:
    """The dataset (labels with `ml_for_training`) and the out-of-sample walk-forward.

    `progress(done_folds, total_folds)` is called once before the first fold and after each.
    """
    ml = settings.ml_for_training()
    dataset = make_dataset(candles, ml)
    total = len(
        walk_forward_splits(len(dataset.X), ml.walk_forward, horizon_bars=ml.labels.horizon_bars)
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
        dataset, ml, algorithm=algorithm, compute=settings.compute, tune=tune, progress=on_fold
    )
    return dataset, result


def save_final_model(
    candles: pd.DataFrame,
    settings: Settings,
    *,
    dataset: Dataset,
    result: WalkForwardResult,
    decision: ValidatedPolicy,
    symbol: str,
    timeframe: str,
    tune: bool | None = None,
) -> TrainingOutcome:
    """Fit the final model on the latest window and save it with its validated policy."""
    ml = settings.ml_for_training()
    final = fit_final_model(dataset, ml, algorithm=result.algorithm, tune=tune)
    manifest = build_manifest(
        final=final,
        walk_forward=result,
        dataset=dataset,
        candles=candles,
        ml=ml,
        exchange_id=settings.exchange.id,
        symbol=symbol,
        timeframe=timeframe,
    ).model_copy(update={"decision": decision})
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
    """Walk-forward evaluate `algorithm`, validate its decision policy, fit and save the final
    model (the manifest holds the policy the bot and the API will trade)."""
    dataset, result = walk_forward_model(
        candles, settings, algorithm=algorithm, tune=tune, progress=progress
    )
    proba = result.predictions[["proba_up"]]
    decision, _stream = validate_policy(proba, result.predictions["fold"], candles, settings)
    return save_final_model(
        candles,
        settings,
        dataset=dataset,
        result=result,
        decision=decision,
        symbol=symbol,
        timeframe=timeframe,
        tune=tune,
    )


@dataclass(frozen=True, slots=True)
class ModelSelection:
    """What `cryptopred train --models ... --select` produced.

    `chosen` is None when the nested rule preferred staying flat to every model's best policy;
    nothing is saved then.
    """

    walk_forwards: dict[ModelName, WalkForwardResult]
    decision: ValidatedPolicy
    chosen: TrainingOutcome | None


def select_and_train(
    candles: pd.DataFrame,
    settings: Settings,
    *,
    symbol: str,
    timeframe: str,
    algorithms: Sequence[ModelName],
    tune: bool | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ModelSelection:
    """Walk-forward every algorithm, choose (model, policy) by the nested rule, save the chosen.

    The choice among models is one more dimension of the same search (every candidate counts
    in the evidence: DSR and PBO are computed over models x policies).
    """
    runs: dict[ModelName, tuple[Dataset, WalkForwardResult]] = {}
    for algorithm in algorithms:
        report = None if progress is None else (lambda d, t, a=algorithm: progress(a, d, t))
        runs[algorithm] = walk_forward_model(
            candles, settings, algorithm=algorithm, tune=tune, progress=report
        )
    first = next(iter(runs.values()))[1].predictions
    proba = pd.DataFrame({name: run[1].predictions["proba_up"] for name, run in runs.items()})
    decision, stream = validate_policy(proba.loc[first.index], first["fold"], candles, settings)
    walk_forwards = {name: run[1] for name, run in runs.items()}
    if stream < 0 or decision.policy.stay_flat:
        return ModelSelection(walk_forwards, decision, None)
    algorithm = list(runs)[stream]
    dataset, result = runs[algorithm]
    chosen = save_final_model(
        candles,
        settings,
        dataset=dataset,
        result=result,
        decision=decision,
        symbol=symbol,
        timeframe=timeframe,
        tune=tune,
    )
    return ModelSelection(walk_forwards, decision, chosen)
