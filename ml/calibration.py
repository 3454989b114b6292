"""Probability calibration and decision-threshold choice, both on validation rows only."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from core.errors import NotEnoughDataError

logger = logging.getLogger(__name__)

CalibrationMethod = Literal["none", "sigmoid", "isotonic"]
THRESHOLD_GRID: npt.NDArray[np.float64] = np.round(np.arange(0.40, 0.6001, 0.005), 3)
"""Candidate thresholds: a narrow band around 0.5 (calibrated next-candle odds stay near it)."""


def calibrate(
    fitted_pipeline: Any,
    X_val: pd.DataFrame,
    y_val: pd.Series,
    *,
    method: CalibrationMethod,
) -> Any:
    """Map the fitted model's scores to calibrated probabilities, learnt on validation rows only.

    The fitted pipeline is frozen (never refitted); `method="none"` returns it unchanged.

    Raises:
        NotEnoughDataError: the validation rows do not hold both UP and DOWN labels.
    """
    if method == "none":
        return fitted_pipeline
    classes = np.unique(np.asarray(y_val))
    if len(classes) < 2:
        raise NotEnoughDataError(
            f"{method} calibration needs UP and DOWN rows in the validation slice, got "
            f"{len(y_val)} rows of classes {classes.tolist()}; raise walk_forward.validation_bars "
            "or set calibration.method: none"
        )
    calibrated = CalibratedClassifierCV(FrozenEstimator(fitted_pipeline), method=method)
    return calibrated.fit(X_val, y_val)


def choose_threshold(y_val: npt.ArrayLike, proba_val: npt.ArrayLike) -> float:
    """The grid threshold with the best validation accuracy (ties: the one closest to 0.5).

    >>> choose_threshold([0, 0, 1, 1], [0.47, 0.49, 0.51, 0.53])
    0.5
    >>> choose_threshold([0, 0, 0, 1], [0.51, 0.52, 0.53, 0.56])
    0.535
    """
    y = np.asarray(y_val).astype(np.int64).ravel()
    proba = np.asarray(proba_val, dtype=np.float64).ravel()
    if y.size == 0 or y.shape != proba.shape:
        raise NotEnoughDataError(
            f"threshold choice needs validation rows (got {y.size} labels, {proba.size} "
            "probabilities); raise walk_forward.validation_bars"
        )
    hits = (proba[None, :] >= THRESHOLD_GRID[:, None]) == (y[None, :] == 1)
    accuracy = hits.mean(axis=1)
    best = np.flatnonzero(np.isclose(accuracy, accuracy.max()))
    chosen = best[np.argmin(np.abs(THRESHOLD_GRID[best] - 0.5))]
    return float(THRESHOLD_GRID[chosen])
