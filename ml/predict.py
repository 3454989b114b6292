"""The one inference path (backtest, bot and API): candles -> features -> `proba_up`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.errors import DataValidationError, NotEnoughDataError
from core.settings import FeatureSettings
from core.timeframes import timeframe_to_timedelta
from core.types import Direction, ModelId
from ml.features import build_features, warmup_bars
from ml.registry import ModelArtifact, check_features

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prediction:
    """A prediction made at the close of one candle about the candle(s) after it."""

    symbol: str
    timeframe: str
    candle_open: pd.Timestamp
    candle_close: pd.Timestamp
    horizon_bars: int
    proba_up: float
    direction: Direction
    threshold: float
    model_id: ModelId


def feature_settings_of(artifact: ModelArtifact) -> FeatureSettings:
    """The feature settings the model was trained with (inference must use the same)."""
    return artifact.manifest.feature_config


def required_candles(artifact: ModelArtifact) -> int:
    """Candles of history needed to predict the newest one exactly as in training."""
    return warmup_bars(feature_settings_of(artifact))


def direction_of(proba_up: float, threshold: float) -> Direction:
    """UP when `proba_up >= threshold`.

    >>> direction_of(0.5, 0.5), direction_of(0.49, 0.5)
    ('UP', 'DOWN')
    """
    return "UP" if proba_up >= threshold else "DOWN"


def predict_proba_features(
    artifact: ModelArtifact, features: pd.DataFrame
) -> npt.NDArray[np.float64]:
    """`proba_up` for rows of ready-made features (columns must match the model exactly)."""
    check_features(artifact.manifest, list(features.columns))
    values = features.to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise DataValidationError(
            f"feature {features.columns[col]!r} is not finite at row {features.index[row]}"
        )
    proba = artifact.estimator.predict_proba(features)
    return np.asarray(proba[:, 1], dtype="float64")


def _proba_since(
    artifact: ModelArtifact, ohlcv: pd.DataFrame, since: pd.Timestamp | None
) -> pd.Series:
    """`proba_up` of the candles opened at or after `since` whose features are complete.

    Features are built over all of `ohlcv` (the history before `since` is their warm-up);
    only the selected rows are scored.
    """
    features = build_features(ohlcv, feature_settings_of(artifact))
    features = features[artifact.manifest.feature_names]
    if since is not None:
        features = features[features.index >= since]
    features = features.dropna()
    if features.empty:
        return pd.Series(dtype="float64", name="proba_up")
    proba = predict_proba_features(artifact, features)
    return pd.Series(proba, index=features.index, name="proba_up")


def predict_history(artifact: ModelArtifact, ohlcv: pd.DataFrame) -> pd.Series:
    """`proba_up` for every candle whose features are complete (index = candle open time)."""
    return _proba_since(artifact, ohlcv, None)


def predict_many(
    artifact: ModelArtifact, ohlcv: pd.DataFrame, *, since: pd.Timestamp | None = None
) -> tuple[Prediction, ...]:
    """One `Prediction` per closed candle of `ohlcv` opened at or after `since` (all when
    None), oldest first; candles whose features are incomplete are left out, so a caller
    that needs a given candle checks that its record is there.

    The candles before `since` are the features' warm-up. Each record is the one
    `predict_latest` makes for that candle (the bot's backfill and its newest candle, the
    API's `/predict/candles`).
    """
    proba = _proba_since(artifact, ohlcv, since)
    manifest = artifact.manifest
    step = timeframe_to_timedelta(manifest.timeframe)
    return tuple(
        Prediction(
            symbol=manifest.symbol,
            timeframe=manifest.timeframe,
            candle_open=candle_open,
            candle_close=candle_open + step,
            horizon_bars=manifest.labels.horizon_bars,
            proba_up=proba_up,
            direction=direction_of(proba_up, manifest.threshold),
            threshold=manifest.threshold,
            model_id=artifact.model_id,
        )
        for candle_open, proba_up in zip(
            pd.DatetimeIndex(proba.index), proba.to_numpy().tolist(), strict=True
        )
    )


def predict_latest(artifact: ModelArtifact, ohlcv: pd.DataFrame) -> Prediction:
    """Predict from the newest candle of `ohlcv` (which must be closed): the last record of
    `predict_many` over the model's warm-up window.

    Raises:
        NotEnoughDataError: fewer candles than the features' warm-up needs.
        DataValidationError: the newest candle's features are not all finite.
    """
    needed = required_candles(artifact)
    if len(ohlcv) < needed:
        raise NotEnoughDataError(
            f"{len(ohlcv)} candles given, model {artifact.model_id} needs at least {needed} "
            "for its feature warm-up"
        )
    window = ohlcv.iloc[-needed:]
    newest = pd.Timestamp(window.index[-1])
    records = predict_many(artifact, window, since=newest)
    if not records:
        features = build_features(window, feature_settings_of(artifact))
        last = features[artifact.manifest.feature_names].iloc[-1]
        missing = [name for name, value in last.items() if not np.isfinite(value)]
        raise DataValidationError(
            f"feature {missing[0]!r} is not finite at row {newest}"
            if missing
            else f"the features of the candle opened {newest} are incomplete"
        )
    return records[-1]
