"""The fast scorer: the fitted pipeline's maths compiled once into numpy, verified at load.

One compiled path serves batches and single rows (a one-row matrix; LightGBM then uses its
prepared C single-row predictor). sklearn's `predict_proba` costs 0.7-1.4 ms per call for one
row (input validation, DataFrame handling, calibration wrappers; NOTES.md "Single-row
inference"), more than FastAPI itself.
`make_scorer` compiles the known pieces of a saved model (calibration, scalers, the
correlation filter, logistic regression, LightGBM) into plain numpy calls and keeps the result
only if it reproduces `ml.predict.predict_proba_features` (the one inference path) on sample
batches and single rows to 1e-9; any other model, or any mismatch, uses that reference path.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import lightgbm.basic as lightgbm_basic
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
    """`proba_up` of rows in the model's feature order; `is_compiled` tells which path runs."""

    score: Score
    is_compiled: bool
    feature_names: tuple[str, ...] = ()

    def score_one(self, features: Mapping[str, float]) -> float:
        """`proba_up` of one mapping of feature values (names already checked by the caller)."""
        names = self.feature_names
        row = np.fromiter((features[name] for name in names), dtype=np.float64, count=len(names))
        return float(self.score(row.reshape(1, -1))[0])


def reference_scorer(artifact: ModelArtifact) -> Scorer:
    """The uncompiled scorer: `ml.predict.predict_proba_features` itself."""
    names = list(artifact.manifest.feature_names)

    def reference(X: Matrix) -> Vector:
        return predict_proba_features(artifact, pd.DataFrame(X, columns=names))

    return Scorer(score=reference, is_compiled=False, feature_names=tuple(names))


def make_scorer(artifact: ModelArtifact, *, seed: int = 0) -> Scorer:
    """The fastest verified scorer for `artifact` (compiled numpy, else `predict_proba`)."""
    names = tuple(artifact.manifest.feature_names)
    fallback = reference_scorer(artifact)
    reference = fallback.score
    compiled = _compile_proba(artifact.estimator)
    if compiled is None:
        logger.info("Model %s: no compiled path, using predict_proba", artifact.model_id)
        return fallback
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
        return fallback
    logger.info("Model %s: compiled scorer verified (max gap %.2g)", artifact.model_id, gap)
    return Scorer(score=compiled, is_compiled=True, feature_names=names)


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


class LightGBMSingleRow:
    """LightGBM's C "single row fast" predictor: one prepared config, no per-call set-up.

    `Booster.predict` rebuilds a predictor and its parameter string on every call (~20 us warm,
    ~100 us between HTTP requests); `LGBM_BoosterPredictForMatSingleRowFast` skips that. It
    uses LightGBM's internal ctypes handle, so any failure to set it up (a changed library)
    means plain `Booster.predict`, and every result is checked against `predict_proba` at load.
    """

    def __init__(self, lib: Any, handle: ctypes.c_void_p, n_features: int) -> None:
        self._lib = lib
        self._handle = handle
        self.n_features = n_features
        self._out = np.empty(1, dtype=np.float64)
        self._out_len = ctypes.c_int64(0)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._lock = threading.Lock()  # the prepared config is not safe to share between threads

    @classmethod
    def create(cls, booster: Any, *, raw_score: bool) -> LightGBMSingleRow | None:
        """The fast predictor of `booster`, or None when LightGBM does not offer it."""
        handle = ctypes.c_void_p()
        n_features = int(booster.num_feature())
        predict_type = 1 if raw_score else 0  # C_API_PREDICT_RAW_SCORE / C_API_PREDICT_NORMAL
        try:
            lib = lightgbm_basic._LIB  # type: ignore[attr-defined]
            status = lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(predict_type),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(int(booster.best_iteration)),  # <= 0: every iteration
                ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                ctypes.c_int32(n_features),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(handle),
            )
        except (AttributeError, OSError, TypeError) as e:
            logger.info("LightGBM single-row fast path unavailable: %s", e)
            return None
        return cls(lib, handle, n_features) if status == 0 else None

    def predict_row(self, row: Vector) -> float:
        """Score one contiguous float64 row of `n_features` values."""
        if row.shape != (self.n_features,) or not row.flags.c_contiguous:
            raise ValueError(f"expected a contiguous row of {self.n_features} features")
        with self._lock:
            status = self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle,
                row.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(self._out_len),
                self._out_ptr,
            )
            value = float(self._out[0])
        if status != 0:
            raise RuntimeError("LightGBM single-row prediction failed")
        return value

    def __del__(self) -> None:
        if self._handle:
            self._lib.LGBM_FastConfigFree(self._handle)
