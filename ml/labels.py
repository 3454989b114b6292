"""Targets that look ahead on purpose: forward returns, direction and triple-barrier labels.

Labels are the only place where the future is read (STYLE.md B0): the label at candle t uses
candles t+1 .. t+horizon_bars, so the last `horizon_bars` rows have no label (NaN).

Label values are 1.0 = UP, 0.0 = DOWN, NaN = unknown.

Dead-band: with `deadband > 0`, a move whose |forward return| is below the dead-band is too small
to learn from. `make_direction_labels` returns NaN for such rows (no training label), and
`ml.dataset.make_dataset` keeps them with their sign label (UP if the close rose at all) and
`trainable=False`: they are left out of model fitting but predicted and scored like every other
out-of-sample row, so accuracy and trading results are never flattered by hiding small moves.

Triple barrier (López de Prado, *Advances in Financial Machine Learning*, ch. 3): from the close at
t, a take-profit at `close + take_profit_atr * ATR_t` and a stop-loss at
`close - stop_loss_atr * ATR_t`, with ATR_t known at t. The first barrier touched by the high/low of
candles t+1 .. t+horizon_bars decides (UP for take-profit, DOWN for stop-loss); when one candle
touches both, the stop-loss counts first (conservative: the order inside a candle is unknown). If
none is touched, the time barrier gives the sign of the return at the horizon.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from core.errors import ConfigError
from ml.features import average_true_range

logger = logging.getLogger(__name__)

UP = 1.0
DOWN = 0.0

BARRIER_NONE = 0
BARRIER_TAKE_PROFIT = 1
BARRIER_STOP_LOSS = 2
BARRIER_TIME = 3


def _check_horizon(horizon_bars: int) -> None:
    if horizon_bars < 1:
        raise ConfigError(
            f"horizon_bars must be >= 1 (1 = next candle), got {horizon_bars}; "
            "fix ml.labels.horizon_bars"
        )


def forward_returns(close: pd.Series, *, horizon_bars: int) -> pd.Series:
    """close[t + horizon_bars] / close[t] - 1, NaN for the last `horizon_bars` rows.

    >>> forward_returns(pd.Series([100.0, 110.0, 99.0]), horizon_bars=1).round(3).tolist()
    [0.1, -0.1, nan]
    """
    _check_horizon(horizon_bars)
    return (close.shift(-horizon_bars) / close - 1.0).rename("forward_return")


def make_direction_labels(
    close: pd.Series, *, horizon_bars: int, deadband: float = 0.0
) -> pd.Series:
    """1.0 when close[t + horizon_bars] > close[t], else 0.0; NaN when unknown or in the dead-band.

    >>> make_direction_labels(pd.Series([1.0, 2.0, 2.0, 1.0]), horizon_bars=1).tolist()
    [1.0, 0.0, 0.0, nan]
    """
    _check_horizon(horizon_bars)
    if deadband < 0:
        raise ConfigError(f"deadband must be >= 0, got {deadband}; fix ml.labels.deadband")
    future = close.shift(-horizon_bars)
    # Compare the closes themselves: close[t+h] / close[t] - 1 can round to 0 for a tiny rise.
    labels = pd.Series(np.where(future > close, UP, DOWN), index=close.index, dtype="float64")
    labels = labels.mask(future.isna() | close.isna())
    if deadband > 0:
        labels = labels.mask(forward_returns(close, horizon_bars=horizon_bars).abs() < deadband)
    return labels.rename("label")


def triple_barrier_outcome(
    ohlcv: pd.DataFrame,
    *,
    horizon_bars: int,
    take_profit_atr: float,
    stop_loss_atr: float,
    atr_window: int,
) -> tuple[pd.Series, pd.Series]:
    """Triple-barrier labels and which barrier decided each (BARRIER_* codes; NONE when unknown)."""
    _check_horizon(horizon_bars)
    if take_profit_atr <= 0 or stop_loss_atr <= 0:
        raise ConfigError(
            f"take_profit_atr and stop_loss_atr must be > 0, got {take_profit_atr} and "
            f"{stop_loss_atr}; fix ml.labels"
        )
    high, low, close = (ohlcv[c].to_numpy(dtype="float64") for c in ("high", "low", "close"))
    atr = average_true_range(ohlcv["high"], ohlcv["low"], ohlcv["close"], window=atr_window)
    upper = close + take_profit_atr * atr.to_numpy()
    lower = close - stop_loss_atr * atr.to_numpy()
    n = len(close)
    barrier = np.full(n, BARRIER_NONE, dtype="int64")
    for step in range(1, min(horizon_bars, n - 1) + 1):
        later_high = np.concatenate([high[step:], np.full(step, np.nan)])
        later_low = np.concatenate([low[step:], np.full(step, np.nan)])
        open_ = barrier == BARRIER_NONE
        stop = open_ & (later_low <= lower)  # checked first: stop-loss wins a same-candle tie
        take = open_ & ~stop & (later_high >= upper)
        barrier[stop] = BARRIER_STOP_LOSS
        barrier[take] = BARRIER_TAKE_PROFIT
    labels = np.where(barrier == BARRIER_TAKE_PROFIT, UP, DOWN)
    timed_out = barrier == BARRIER_NONE
    future = np.concatenate([close[horizon_bars:], np.full(min(horizon_bars, n), np.nan)])
    labels = np.where(timed_out, np.where(future > close, UP, DOWN), labels)
    barrier[timed_out] = BARRIER_TIME
    unknown = np.isnan(future) | np.isnan(upper)  # no full horizon yet, or ATR still warming up
    labels[unknown] = np.nan
    barrier[unknown] = BARRIER_NONE
    index = ohlcv.index
    return pd.Series(labels, index=index, name="label"), pd.Series(barrier, index=index)


def make_triple_barrier_labels(
    ohlcv: pd.DataFrame,
    *,
    horizon_bars: int,
    take_profit_atr: float,
    stop_loss_atr: float,
    atr_window: int,
) -> pd.Series:
    """Triple-barrier labels: 1.0 take-profit first, 0.0 stop-loss first, else the horizon sign."""
    labels, _ = triple_barrier_outcome(
        ohlcv,
        horizon_bars=horizon_bars,
        take_profit_atr=take_profit_atr,
        stop_loss_atr=stop_loss_atr,
        atr_window=atr_window,
    )
    return labels
