"""Scoring logged predictions: the realised return (and label) of each from its candles."""

from __future__ import annotations

import logging
import math

import pandas as pd

from core.types import Direction
from data.schema import index_to_epoch_ms
from ml.labels import triple_barrier_outcome
from ml.registry import ModelArtifact
from storage.records import Outcome, StoredPrediction

logger = logging.getLogger(__name__)


def realised_labels(artifact: ModelArtifact, candles: pd.DataFrame) -> pd.Series | None:
    """The training labels of a triple-barrier model over `candles` (None: direction labels).

    Live outcomes must be scored with the target the model was trained and evaluated on;
    for direction labels that is the sign of the return, which needs no extra work.
    """
    labels = artifact.manifest.labels
    if labels.method != "triple_barrier":
        return None
    values, _barrier = triple_barrier_outcome(
        candles,
        horizon_bars=labels.horizon_bars,
        take_profit_atr=labels.take_profit_atr,
        stop_loss_atr=labels.stop_loss_atr,
        atr_window=artifact.manifest.feature_config.atr_window,
    )
    return values


def outcomes_from_candles(
    pending: list[StoredPrediction],
    candles: pd.DataFrame,
    *,
    step_ms: int,
    resolved_ms: int,
    labels: pd.Series | None = None,
) -> list[Outcome]:
    """The realised return of each pending prediction whose two candles are in `candles`.

    The return is close(target candle) / close(predicted candle) - 1, candles found by open
    time; predictions whose candles are missing stay unresolved. With `labels` (1.0 UP /
    0.0 DOWN / NaN unknown, by candle open time) the direction comes from the label.
    """
    open_ms = index_to_epoch_ms(pd.DatetimeIndex(candles.index)).tolist()
    closes = dict(zip(open_ms, candles["close"].tolist(), strict=True))
    label_of = {} if labels is None else dict(zip(open_ms, labels.tolist(), strict=True))
    outcomes = []
    for prediction in pending:
        start = closes.get(prediction.candle_open_ms)
        end = closes.get(prediction.target_close_ms - step_ms)
        label = label_of.get(prediction.candle_open_ms, math.nan)
        if start is None or end is None or (labels is not None and not math.isfinite(label)):
            logger.debug("Prediction %d: its candles are not in this window", prediction.id)
            continue
        direction: Direction | None = None
        if labels is not None:
            direction = "UP" if label == 1.0 else "DOWN"
        outcomes.append(Outcome(prediction.id, end / start - 1.0, resolved_ms, direction))
    return outcomes
