"""Tests of ml.labels: alignment on hand-made candles, dead-band and the triple barrier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError
from data.schema import epoch_ms_to_index, validate_ohlcv
from ml.labels import (
    BARRIER_NONE,
    BARRIER_STOP_LOSS,
    BARRIER_TAKE_PROFIT,
    BARRIER_TIME,
    forward_returns,
    make_direction_labels,
    make_triple_barrier_labels,
    triple_barrier_outcome,
)

CLOSES = [100.0, 101.0, 99.0, 99.0, 104.0, 103.0, 103.5, 102.0, 108.0, 107.0]
NAN = np.nan


def _close() -> pd.Series:
    index = epoch_ms_to_index([1_600_000_000_000 + i * 3_600_000 for i in range(len(CLOSES))])
    return pd.Series(CLOSES, index=index, name="close")


def _candles(highs: list[float], lows: list[float], closes: list[float]) -> pd.DataFrame:
    """Candles whose open is the previous close (the first opens at its close)."""
    index = epoch_ms_to_index([1_600_000_000_000 + i * 3_600_000 for i in range(len(closes))])
    opens = [closes[0], *closes[:-1]]
    return pd.DataFrame(
        {"open": opens, "high": highs, "low": lows, "close": closes, "volume": 1.0}, index=index
    )


# ----------------------------------------------------------------------------- direction
def test_forward_returns_use_the_close_horizon_bars_ahead() -> None:
    close = _close()
    for horizon in (1, 3):
        returns = forward_returns(close, horizon_bars=horizon)
        for t in range(len(CLOSES) - horizon):
            assert returns.iloc[t] == pytest.approx(CLOSES[t + horizon] / CLOSES[t] - 1)
        assert returns.iloc[-horizon:].isna().all()
        assert returns.iloc[:-horizon].notna().all()
        assert returns.index.equals(close.index)


def test_make_direction_labels_horizon_1_on_hand_made_series() -> None:
    labels = make_direction_labels(_close(), horizon_bars=1)
    # 100->101 up, 101->99 down, 99->99 flat = DOWN, 99->104 up, 104->103 down, 103->103.5 up,
    # 103.5->102 down, 102->108 up, 108->107 down, last unknown.
    expected = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, NAN]
    np.testing.assert_array_equal(labels.to_numpy(), expected)


def test_make_direction_labels_horizon_3_on_hand_made_series() -> None:
    labels = make_direction_labels(_close(), horizon_bars=3)
    # t: 0 (100 vs 99) 1 (101 vs 104) 2 (99 vs 103) 3 (99 vs 103.5) 4 (104 vs 102)
    #    5 (103 vs 108) 6 (103.5 vs 107) 7..9 unknown
    expected = [0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, NAN, NAN, NAN]
    np.testing.assert_array_equal(labels.to_numpy(), expected)


def test_make_direction_labels_tiny_rise_is_up() -> None:
    close = pd.Series([1.0, np.nextafter(1.0, 2.0), 1.0])
    np.testing.assert_array_equal(make_direction_labels(close, horizon_bars=1), [1.0, 0.0, NAN])


def test_make_direction_labels_deadband_blanks_small_moves_only() -> None:
    labels = make_direction_labels(_close(), horizon_bars=1, deadband=0.012)
    # |returns|: 1%, 1.98%, 0%, 5.05%, 0.96%, 0.49%, 1.45%, 5.88%, 0.93%
    expected = [NAN, 0.0, NAN, 1.0, NAN, NAN, 0.0, 1.0, NAN, NAN]
    np.testing.assert_array_equal(labels.to_numpy(), expected)


@pytest.mark.parametrize("horizon", [0, -1])
def test_labels_reject_a_non_positive_horizon(horizon: int) -> None:
    with pytest.raises(ConfigError, match="horizon_bars"):
        make_direction_labels(_close(), horizon_bars=horizon)
    with pytest.raises(ConfigError, match="horizon_bars"):
        forward_returns(_close(), horizon_bars=horizon)


def test_make_direction_labels_rejects_negative_deadband() -> None:
    with pytest.raises(ConfigError, match="deadband"):
        make_direction_labels(_close(), horizon_bars=1, deadband=-0.1)


# ----------------------------------------------------------------------------- triple barrier
def _barrier_case(later_highs: list[float], later_lows: list[float], later_closes: list[float]):
    """Two flat warm-up candles (ATR = 2 at t=1: range 2 each), then the candles under test."""
    highs = [101.0, 101.0, *later_highs]
    lows = [99.0, 99.0, *later_lows]
    closes = [100.0, 100.0, *later_closes]
    candles = validate_ohlcv(_candles(highs, lows, closes))  # the hand-made candles are valid
    return triple_barrier_outcome(
        candles, horizon_bars=3, take_profit_atr=2.0, stop_loss_atr=1.0, atr_window=2
    )


def test_triple_barrier_take_profit_touched_first() -> None:
    # From t=1: close 100, ATR 2 -> take-profit 104, stop-loss 98.
    labels, barrier = _barrier_case([103.0, 104.5, 103.5], [99.0, 101.0, 97.0], [102, 103, 99])
    assert labels.iloc[1] == 1.0
    assert barrier.iloc[1] == BARRIER_TAKE_PROFIT


def test_triple_barrier_stop_loss_touched_first() -> None:
    labels, barrier = _barrier_case([101.0, 101.0, 105.0], [98.5, 97.9, 99.0], [100, 99, 104])
    assert labels.iloc[1] == 0.0
    assert barrier.iloc[1] == BARRIER_STOP_LOSS


def test_triple_barrier_both_in_one_candle_counts_stop_loss() -> None:
    labels, barrier = _barrier_case([105.0, 104.5, 101.0], [97.0, 99.0, 99.0], [104, 100, 100])
    assert labels.iloc[1] == 0.0
    assert barrier.iloc[1] == BARRIER_STOP_LOSS


@pytest.mark.parametrize(("last_close", "expected"), [(101.5, 1.0), (99.5, 0.0), (100.0, 0.0)])
def test_triple_barrier_time_barrier_takes_the_horizon_sign(last_close: float, expected) -> None:
    labels, barrier = _barrier_case(
        [101.0, 102.0, 102.0], [99.0, 99.0, 99.0], [100.5, 101.0, last_close]
    )
    assert labels.iloc[1] == expected
    assert barrier.iloc[1] == BARRIER_TIME


def test_triple_barrier_unknown_without_full_horizon_or_atr() -> None:
    labels, barrier = _barrier_case([101.0, 110.0, 101.0], [99.0, 99.0, 99.0], [100, 100, 100])
    assert np.isnan(labels.iloc[0])  # ATR(2) not known at t=0
    assert labels.iloc[-3:].isna().all()  # fewer than 3 candles ahead
    assert (barrier.iloc[-3:] == BARRIER_NONE).all()
    assert labels.iloc[1] == 1.0  # t=1 has ATR and a full horizon: take-profit at 104


def test_triple_barrier_uses_atr_known_at_t_only() -> None:
    # A huge candle right after t must not widen the barriers of t (ATR at t excludes it).
    labels, barrier = _barrier_case([130.0, 129.5, 129.5], [99.5, 128.5, 128.5], [129, 129, 129])
    assert labels.iloc[1] == 1.0
    assert barrier.iloc[1] == BARRIER_TAKE_PROFIT


def test_make_triple_barrier_labels_equals_outcome_labels() -> None:
    rng = np.random.default_rng(3)
    closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 60))))
    highs = [c * 1.004 for c in closes]
    lows = [c * 0.996 for c in closes]
    candles = _candles(highs, lows, closes)
    candles["high"] = candles[["open", "high"]].max(axis=1)
    candles["low"] = candles[["open", "low"]].min(axis=1)
    options = {"horizon_bars": 4, "take_profit_atr": 1.5, "stop_loss_atr": 1.0, "atr_window": 5}
    labels = make_triple_barrier_labels(candles, **options)
    outcome, _ = triple_barrier_outcome(candles, **options)
    pd.testing.assert_series_equal(labels, outcome)
    assert labels.iloc[4:-4].notna().all()
    assert set(labels.dropna().unique()) == {0.0, 1.0}


def test_triple_barrier_rejects_non_positive_multiples() -> None:
    with pytest.raises(ConfigError, match="take_profit_atr"):
        make_triple_barrier_labels(
            _candles([1.0], [1.0], [1.0]),
            horizon_bars=1,
            take_profit_atr=0.0,
            stop_loss_atr=1.0,
            atr_window=2,
        )
