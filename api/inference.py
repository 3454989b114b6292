"""Fast `proba_up` for request rows: the fitted pipeline's maths in numpy, verified at load.

sklearn's `predict_proba` costs 0.7-1.4 ms per call for one row (input validation, DataFrame
handling, calibration wrappers; NOTES.md "Single-row inference"), more than FastAPI itself.
`make_scorer` compiles the known pieces of a saved model (calibration, scalers, the
correlation filter, logistic regression, LightGBM) into plain numpy calls and keeps the result
only if it reproduces `ml.predict.predict_proba_features` on sample rows to 1e-9; any other
model, or any mismatch, uses that reference path unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from lightgbm import LGBMClassifier
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from api.single_row import LightGBMSingleRow, RowScore, compile_single_row
from ml.estimators import CorrelationFilter
from ml.predict import predict_proba_features
from ml.registry import ModelArtifact

logger = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float64]
Transform = Callable[[Matrix], Matrix]
Score = Callable[[Matrix], Vector]

CHECK_ROWS = 256
CHECK_SINGLE_ROWS = 16
TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class Scorer:
    """`proba_up` of rows in the model's feature order; `is_compiled` tells which path runs.

    `score_one`, when set, scores one mapping of feature values (names already checked)
    without building the whole row: the fused path of `api.single_row`.
    """

    score: Score
    is_compiled: bool
    score_one: RowScore | None = None


def make_scorer(artifact: ModelArtifact, *, seed: int = 0) -> Scorer:
    """The fastest verified scorer for `artifact` (compiled numpy, else `predict_proba`)."""
    names = list(artifact.manifest.feature_names)

    def reference(X: Matrix) -> Vector:
        return predict_proba_features(artifact, pd.DataFrame(X, columns=names))

    compiled = _compile_proba(artifact.estimator)
    if compiled is None:
        logger.info("Model %s: no compiled path, using predict_proba", artifact.model_id)
        return Scorer(score=reference, is_compiled=False)
    sample = sample_rows(artifact, n_rows=CHECK_ROWS, seed=seed)
    expected = reference(sample)
    # whole batches and single rows (a one-row request may take another code path)
    singles = np.concatenate([compiled(sample[i : i + 1]) for i in range(CHECK_SINGLE_ROWS)])
    gap = max(
        float(np.max(np.abs(compiled(sample) - expected))),
        float(np.max(np.abs(singles - expected[:CHECK_SINGLE_ROWS]))),
    )
    if not gap <= TOLERANCE:
        logger.warning(
            "Model %s: compiled scorer differs from predict_proba by %.3g; using predict_proba",
            artifact.model_id,
            gap,
        )
        return Scorer(score=reference, is_compiled=False)
    logger.info("Model %s: compiled scorer verified (max gap %.2g)", artifact.model_id, gap)
    return Scorer(score=compiled, is_compiled=True, score_one=_verified_single(artifact, sample))


def _verified_single(artifact: ModelArtifact, sample: Matrix) -> RowScore | None:
    """The fused single-row scorer, kept only if it matches `predict_proba` on sample rows."""
    one = compile_single_row(artifact.estimator, artifact.manifest.feature_names)
    if one is None:
        return None
    names = artifact.manifest.feature_names
    rows = sample[:CHECK_SINGLE_ROWS]
    expected = predict_proba_features(artifact, pd.DataFrame(rows, columns=names))
    got = np.array([one(dict(zip(names, row.tolist(), strict=True))) for row in rows])
    gap = float(np.max(np.abs(got - expected)))
    if not gap <= TOLERANCE:
        logger.warning("Model %s: fused single-row path differs by %.3g; not used",
                       artifact.model_id, gap)  # fmt: skip
        return None
    return one


def sample_rows(artifact: ModelArtifact, *, n_rows: int, seed: int) -> Matrix:
    """Random rows spread over the training range of every feature (N(0, 1) if unknown)."""
    rng = np.random.default_rng(seed)
    ranges = artifact.manifest.feature_ranges
    columns = []
    for name in artifact.manifest.feature_names:
        low, high = ranges.get(name, (np.nan, np.nan))
        if np.isfinite(low) and np.isfinite(high):
            span = max(high - low, 1e-9)
            columns.append(rng.uniform(low - 0.1 * span, high + 0.1 * span, n_rows))
        else:
            columns.append(rng.normal(0.0, 1.0, n_rows))
    return np.column_stack(columns).astype(np.float64)


# ------------------------------------------------------------------------------ compilation
def _compile_proba(estimator: Any) -> Score | None:
    """P(class 1) of a fitted estimator, or None when a piece is not supported."""
    if isinstance(estimator, CalibratedClassifierCV):
        return _compile_calibrated(estimator)
    if isinstance(estimator, FrozenEstimator):
        return _compile_proba(estimator.estimator)
    if isinstance(estimator, Pipeline):
        return _compile_pipeline(estimator, decision=False)
    if isinstance(estimator, LogisticRegression) and _is_binary(estimator):
        decision = _logreg_decision(estimator)
        return lambda X: np.asarray(expit(decision(X)), dtype=np.float64)
    if isinstance(estimator, LGBMClassifier) and _is_binary(estimator):
        return _lightgbm_predict(estimator, raw_score=False)
    return None


def _compile_decision(estimator: Any) -> Score | None:
    """`decision_function` of a fitted estimator, or None."""
    if isinstance(estimator, FrozenEstimator):
        return _compile_decision(estimator.estimator)
    if isinstance(estimator, Pipeline):
        return _compile_pipeline(estimator, decision=True)
    if isinstance(estimator, LogisticRegression) and _is_binary(estimator):
        return _logreg_decision(estimator)
    if isinstance(estimator, LGBMClassifier) and _is_binary(estimator):
        return _lightgbm_predict(estimator, raw_score=True)  # LightGBM >= 4.7 decision_function
    return None


def _compile_calibrated(model: CalibratedClassifierCV) -> Score | None:
    # sklearn's `_CalibratedClassifier.predict_proba`: the base model's decision_function (else
    # its predict_proba[:, 1]) goes through the one binary calibrator; classifiers are averaged.
    if model.method not in ("sigmoid", "isotonic") or len(model.classes_) != 2:
        return None
    parts = []
    for calibrated in model.calibrated_classifiers_:
        base = calibrated.estimator
        has_decision = hasattr(base, "decision_function")
        response = _compile_decision(base) if has_decision else _compile_proba(base)
        calibrator = _compile_calibrator(calibrated.calibrators[0])
        if response is None or calibrator is None or len(calibrated.calibrators) != 1:
            return None
        parts.append((response, calibrator))
    if len(parts) == 1:  # the usual FrozenEstimator case; 0 + p and p / 1 are exact
        response, calibrator = parts[0]
        return lambda X: calibrator(response(X))

    def score(X: Matrix) -> Vector:
        total = np.zeros(X.shape[0])
        for response, calibrator in parts:
            total += calibrator(response(X))
        return total / len(parts)

    return score


def _compile_calibrator(calibrator: Any) -> Callable[[Vector], Vector] | None:
    if isinstance(calibrator, IsotonicRegression):
        return lambda values: np.asarray(calibrator.predict(values), dtype=np.float64)
    if hasattr(calibrator, "a_") and hasattr(calibrator, "b_"):  # sklearn's _SigmoidCalibration
        a, b = float(calibrator.a_), float(calibrator.b_)
        return lambda values: np.asarray(expit(-(a * values + b)), dtype=np.float64)
    return None


def _compile_pipeline(pipeline: Pipeline, *, decision: bool) -> Score | None:
    transforms = [_compile_transform(step) for _, step in pipeline.steps[:-1]]
    final = pipeline.steps[-1][1]
    head = _compile_decision(final) if decision else _compile_proba(final)
    if head is None and not decision and transforms and _takes_arrays(final):
        head = _wrapped_proba(final)  # e.g. XGBoost, RandomForest, MLP: their own predict_proba
    if head is None or any(transform is None for transform in transforms):
        return None
    steps = [transform for transform in transforms if transform is not None]

    def score(X: Matrix) -> Vector:
        for transform in steps:
            X = transform(X)
        return head(X)

    return score


def _compile_transform(step: Any) -> Transform | None:
    if step is None or step == "passthrough":
        return lambda X: X
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None
        return lambda X: _standardise(X, mean, scale)
    if isinstance(step, MinMaxScaler):
        scale, offset, clip = step.scale_, step.min_, bool(step.clip)
        low, high = step.feature_range
        return lambda X: _min_max(X, scale, offset, (low, high) if clip else None)
    if isinstance(step, CorrelationFilter):
        keep = np.flatnonzero(step.support_)
        return lambda X: X[:, keep]
    return None


def _standardise(X: Matrix, mean: Vector | None, scale: Vector | None) -> Matrix:
    out = X - mean if mean is not None else X.copy()
    if scale is not None:
        out /= scale
    return out


def _min_max(X: Matrix, scale: Vector, offset: Vector, clip: tuple[float, float] | None) -> Matrix:
    out = X * scale + offset
    return np.clip(out, clip[0], clip[1]) if clip is not None else out


def _logreg_decision(model: LogisticRegression) -> Score:
    coef = np.asarray(model.coef_[0], dtype=np.float64)
    intercept = float(model.intercept_[0])
    return lambda X: X @ coef + intercept


def _lightgbm_predict(model: LGBMClassifier, *, raw_score: bool) -> Score:
    # The booster itself uses the best iteration when early stopping ran, as the wrapper does.
    booster = model.booster_
    single = LightGBMSingleRow.create(booster, raw_score=raw_score)

    def score(X: Matrix) -> Vector:
        if single is not None and X.shape[0] == 1:
            return np.array([single.predict_row(np.ascontiguousarray(X[0], dtype=np.float64))])
        return np.asarray(booster.predict(X, raw_score=raw_score, num_threads=1), dtype=np.float64)

    return score


def _takes_arrays(model: Any) -> bool:
    """True for a binary classifier fitted on arrays (the output of an earlier pipeline step)."""
    return (
        hasattr(model, "predict_proba")
        and _is_binary(model)
        and not hasattr(model, "feature_names_in_")
    )


def _wrapped_proba(model: Any) -> Score:
    return lambda X: np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)


def _is_binary(model: Any) -> bool:
    return len(getattr(model, "classes_", ())) == 2
