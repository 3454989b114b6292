"""Pure pieces of a market tick: outcome scoring with the model's own label definition."""

from __future__ import annotations

import pandas as pd

from bot.outcomes import outcomes_from_candles
from data.schema import index_to_epoch_ms
from storage.records import StoredPrediction
from tests.factories import make_ohlcv

HOUR_MS = 3_600_000


def _pending(open_ms: int, *, horizon: int = 1) -> StoredPrediction:
    return StoredPrediction(
        id=open_ms // HOUR_MS, exchange="binance", symbol="BTC/USDT", timeframe="1h",
        candle_open_ms=open_ms, target_close_ms=open_ms + (horizon + 1) * HOUR_MS,
        horizon_bars=horizon, proba_up=0.6, direction="UP", signal=1, threshold=0.5,
        model_id="m", created_ms=0, latency_ms=0.0, is_backfill=False, actual_return=None,
        actual_direction=None, is_correct=None, resolved_ms=None,
    )  # fmt: skip


def test_outcomes_from_candles_sign_of_return_by_default() -> None:
    candles = make_ohlcv(10)
    opens = index_to_epoch_ms(pd.DatetimeIndex(candles.index))
    (outcome,) = outcomes_from_candles(
        [_pending(int(opens[3]))], candles, step_ms=HOUR_MS, resolved_ms=1
    )
    closes = candles["close"].to_numpy()
    assert outcome.actual_return == closes[4] / closes[3] - 1
    assert outcome.actual_direction is None  # storage derives it from the sign


def test_outcomes_from_candles_use_the_model_labels_when_given() -> None:
    candles = make_ohlcv(10)
    opens = index_to_epoch_ms(pd.DatetimeIndex(candles.index))
    labels = pd.Series([float("nan")] * 10, index=candles.index)
    labels.iloc[3] = 0.0  # e.g. the stop-loss barrier was touched first
    pending = [_pending(int(opens[3])), _pending(int(opens[5]))]
    outcomes = outcomes_from_candles(
        pending, candles, step_ms=HOUR_MS, resolved_ms=1, labels=labels
    )
    assert [(o.prediction_id, o.actual_direction) for o in outcomes] == [(pending[0].id, "DOWN")]
