"""Aligns features and labels into a `Dataset`, dropping warm-up and unlabeled rows (counted)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import NotEnoughDataError
from core.settings import FeatureSettings, MLSettings
from ml.features import build_features, warmup_bars
from ml.labels import (
    BARRIER_TIME,
    forward_returns,
    make_direction_labels,
    triple_barrier_outcome,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Dataset:
    """Rows with complete features and a known label, all indexed by candle open `timestamp`.

    Attributes:
        X: float64 features.
        y: int labels, 1 = UP, 0 = DOWN.
        forward_return: return over the label horizon (for scoring and trading baselines).
        trainable: False for dead-band rows: left out of fitting, still predicted and scored.
        warmup_rows_dropped: rows dropped because some feature was still warming up (NaN).
        unlabeled_rows_dropped: rows with complete features but no label (the last candles).
    """

    X: pd.DataFrame
    y: pd.Series
    forward_return: pd.Series
    trainable: pd.Series
    warmup_rows_dropped: int
    unlabeled_rows_dropped: int


def _labels_and_trainable(ohlcv: pd.DataFrame, cfg: MLSettings) -> tuple[pd.Series, pd.Series]:
    """Sign labels for every row (NaN when unknown) and the dead-band training mask."""
    labels_cfg = cfg.labels
    close = ohlcv["close"]
    moved = forward_returns(close, horizon_bars=labels_cfg.horizon_bars).abs()
    if labels_cfg.deadband > 0:
        small = moved < labels_cfg.deadband
    else:
        small = pd.Series(False, index=close.index)
    if labels_cfg.method == "direction":
        labels = make_direction_labels(close, horizon_bars=labels_cfg.horizon_bars)
        return labels, ~small
    labels, barrier = triple_barrier_outcome(
        ohlcv,
        horizon_bars=labels_cfg.horizon_bars,
        take_profit_atr=labels_cfg.take_profit_atr,
        stop_loss_atr=labels_cfg.stop_loss_atr,
        atr_window=cfg.features.atr_window,
    )
    # A touched barrier is a move of several ATRs; only the time barrier can be a tiny move.
    return labels, ~(small & (barrier == BARRIER_TIME))


def make_dataset(ohlcv: pd.DataFrame, cfg: MLSettings) -> Dataset:
    """Features, labels and forward returns of every row that has all three.

    Raises:
        DataValidationError: the candles break the OHLCV contract.
        NotEnoughDataError: no row is left after the warm-up and the label horizon.
    """
    features = build_features(ohlcv, cfg.features)
    labels, trainable = _labels_and_trainable(ohlcv, cfg)
    forward_return = forward_returns(ohlcv["close"], horizon_bars=cfg.labels.horizon_bars)
    complete = features.notna().all(axis=1).to_numpy()
    labeled = labels.notna().to_numpy()
    keep = complete & labeled
    warmup_dropped = int((~complete).sum())
    unlabeled_dropped = int((complete & ~labeled).sum())
    if not keep.any():
        raise NotEnoughDataError(
            f"no usable rows in {len(ohlcv)} candles: features need {warmup_bars(cfg.features)} "
            f"candles of warm-up and labels {cfg.labels.horizon_bars} more; pass a longer history"
        )
    dataset = Dataset(
        X=features.loc[keep],
        y=labels.loc[keep].astype("int64"),
        forward_return=forward_return.loc[keep].astype("float64"),
        trainable=trainable.loc[keep].astype("bool").rename("trainable"),
        warmup_rows_dropped=warmup_dropped,
        unlabeled_rows_dropped=unlabeled_dropped,
    )
    _log_dataset(dataset, cfg)
    return dataset


def _log_dataset(dataset: Dataset, cfg: MLSettings) -> None:
    index = dataset.X.index
    logger.info(
        "Dataset: %d rows x %d features (%s .. %s), %s labels h=%d; dropped %d warm-up and "
        "%d unlabeled rows; %d dead-band rows not trainable; UP share %.3f",
        len(index),
        dataset.X.shape[1],
        index[0],
        index[-1],
        cfg.labels.method,
        cfg.labels.horizon_bars,
        dataset.warmup_rows_dropped,
        dataset.unlabeled_rows_dropped,
        int((~dataset.trainable).sum()),
        float(np.mean(dataset.y.to_numpy())),
    )


def latest_features(ohlcv: pd.DataFrame, cfg: FeatureSettings) -> pd.DataFrame:
    """Features of every row whose features are complete (no label needed), for inference.

    Raises:
        DataValidationError: the candles break the OHLCV contract.
        NotEnoughDataError: no row has complete features; the message says how many are needed.
    """
    needed = warmup_bars(cfg)
    features = build_features(ohlcv, cfg)
    complete = features.loc[features.notna().all(axis=1)]
    if complete.empty:
        raise NotEnoughDataError(
            f"features need {needed} candles of history, got {len(ohlcv)}; fetch more candles"
        )
    if len(ohlcv) < needed:
        logger.warning(
            "Only %d candles for features that need %d: the newest row may differ slightly "
            "from what the model saw in training; fetch %d candles",
            len(ohlcv),
            needed,
            needed,
        )
    return complete
