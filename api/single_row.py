"""Single-row fast paths: LightGBM's prepared C predictor and a fused scaler-model-calibrator.

Between two HTTP requests the CPU caches are cold, so every numpy call on a 31-value row costs
several microseconds; a `/predict` on the default pipeline (scaler, correlation filter,
LightGBM or logistic regression, sigmoid calibration) made a dozen of them. The fused path
reads the kept features straight from the request mapping, scales them in place and calls the
model once. `api.inference.make_scorer` only keeps it if it matches `predict_proba`.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightgbm.basic as lightgbm_basic
import numpy as np
import numpy.typing as npt
from lightgbm import LGBMClassifier
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ml.estimators import CorrelationFilter

logger = logging.getLogger(__name__)

Row = npt.NDArray[np.float64]
RowScore = Callable[[Mapping[str, float]], float]
"""`proba_up` of one mapping of feature values (the caller checked the names)."""


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

    def predict_row(self, row: Row) -> float:
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


def compile_single_row(estimator: Any, feature_names: Sequence[str]) -> RowScore | None:
    """A fused scorer for [sigmoid calibration of] StandardScaler? -> CorrelationFilter? ->
    logistic regression or LightGBM; None for any other model (the row path is used)."""
    calibrate: Callable[[float], float] = _identity
    if isinstance(estimator, CalibratedClassifierCV):
        parts = estimator.calibrated_classifiers_
        if len(parts) != 1 or estimator.method != "sigmoid" or len(parts[0].calibrators) != 1:
            return None
        a, b = float(parts[0].calibrators[0].a_), float(parts[0].calibrators[0].b_)
        calibrate = lambda value: float(expit(-(a * value + b)))  # noqa: E731 - _SigmoidCalibration
        estimator, decision = parts[0].estimator, True
    else:
        decision = False
    if isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    if not isinstance(estimator, Pipeline):
        return None
    return _fuse(estimator.steps, feature_names, calibrate=calibrate, decision=decision)


def _identity(value: float) -> float:
    return value


def _fuse(
    steps: list[tuple[str, Any]],
    feature_names: Sequence[str],
    *,
    calibrate: Callable[[float], float],
    decision: bool,
) -> RowScore | None:
    keep = np.arange(len(feature_names))
    mean: Row | None = None
    scale: Row | None = None
    for _, step in steps[:-1]:
        if isinstance(step, StandardScaler) and mean is None and len(keep) == len(feature_names):
            mean = step.mean_ if step.with_mean else None
            scale = step.scale_ if step.with_std else None
        elif isinstance(step, CorrelationFilter):
            keep = keep[step.support_]
        else:
            return None
    head = _head(steps[-1][1], decision=decision)
    if head is None:
        return None
    names = [feature_names[int(i)] for i in keep]
    mean_k = None if mean is None else np.ascontiguousarray(mean[keep])
    scale_k = None if scale is None else np.ascontiguousarray(scale[keep])

    def score(features: Mapping[str, float]) -> float:
        row = np.array([features[name] for name in names], dtype=np.float64)
        if mean_k is not None:
            row -= mean_k
        if scale_k is not None:
            row /= scale_k
        return calibrate(head(row))

    return score


def _head(model: Any, *, decision: bool) -> Callable[[Row], float] | None:
    """The final model on one scaled row: decision value (calibrated) or probability."""
    if len(getattr(model, "classes_", ())) != 2:
        return None
    if isinstance(model, LogisticRegression):
        coef, intercept = np.ascontiguousarray(model.coef_[0]), float(model.intercept_[0])
        if decision:
            return lambda row: float(row @ coef) + intercept
        return lambda row: float(expit(float(row @ coef) + intercept))
    if isinstance(model, LGBMClassifier):
        single = LightGBMSingleRow.create(model.booster_, raw_score=decision)
        return None if single is None else single.predict_row
    return None
