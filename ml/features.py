"""Causal, scale-free features from OHLCV candles: `build_features`, their specs and warm-up length.

Every value at candle t uses only candles at or before t (STYLE.md B0): rolling windows end at t,
exponential averages run forward, nothing is centred or back-filled, and `ta`'s `fillna` stays
False. Warm-up rows are NaN; `ml.dataset` drops and counts them. Every feature is a return, a
ratio or an oscillator, so multiplying all prices (or all volumes) by a constant leaves it
unchanged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ta.momentum import RSIIndicator, StochasticOscillator
from ta.trend import MACD, SMAIndicator

from core.settings import FEATURE_GROUPS, FeatureGroup, FeatureSettings
from data.schema import validate_ohlcv

logger = logging.getLogger(__name__)

EMA_TOLERANCE = 1e-15
"""Weight the seed of an exponential average may keep after warm-up (see `warmup_bars`)."""

_FLAT_RELATIVE = 1e-10  # a rolling std below this fraction of its mean counts as zero (flat window)

Columns = dict[str, pd.Series]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature column: its name, a one-line description and its group."""

    name: str
    description: str
    group: FeatureGroup


# ------------------------------------------------------------------------------- specs
def _unique(values: tuple[int, ...]) -> list[int]:
    return list(dict.fromkeys(values))


def _specs_returns(cfg: FeatureSettings) -> list[FeatureSpec]:
    return [
        FeatureSpec(f"log_return_{lag}", f"log(close / close {lag} bar(s) earlier)", "returns")
        for lag in _unique(cfg.return_lags)
    ]


def _specs_volatility(cfg: FeatureSettings) -> list[FeatureSpec]:
    specs = [
        FeatureSpec(
            f"volatility_{w}", f"std of 1-bar log returns over the last {w} bars", "volatility"
        )
        for w in _unique(cfg.volatility_windows)
    ]
    return [
        *specs,
        FeatureSpec("atr_ratio", f"ATR({cfg.atr_window}, Wilder) / close", "volatility"),
        FeatureSpec(
            "bb_width",
            f"Bollinger({cfg.bollinger_window}, {cfg.bollinger_std}) width, % of the middle band",
            "volatility",
        ),
    ]


def _specs_momentum(cfg: FeatureSettings) -> list[FeatureSpec]:
    return [
        FeatureSpec("rsi", f"RSI({cfg.rsi_window}), 0..100", "momentum"),
        FeatureSpec("stoch_k", f"stochastic %K({cfg.stoch_window}), 0..100", "momentum"),
        FeatureSpec("stoch_d", f"stochastic %D: {cfg.stoch_smooth}-bar mean of %K", "momentum"),
        FeatureSpec(
            "bb_pband",
            f"Bollinger %B({cfg.bollinger_window}, {cfg.bollinger_std}): 0 = lower, 1 = upper band",
            "momentum",
        ),
    ]


def _specs_trend(cfg: FeatureSettings) -> list[FeatureSpec]:
    macd = f"MACD({cfg.macd_fast}, {cfg.macd_slow}, {cfg.macd_signal})"
    specs = [
        FeatureSpec("macd_line", f"{macd} line / close", "trend"),
        FeatureSpec("macd_signal", f"{macd} signal line / close", "trend"),
        FeatureSpec("macd_hist", f"{macd} histogram / close", "trend"),
    ]
    return specs + [
        FeatureSpec(f"ma_dist_{w}", f"close / SMA({w}) of close - 1", "trend")
        for w in _unique(cfg.ma_windows)
    ]


def _specs_volume(cfg: FeatureSettings) -> list[FeatureSpec]:
    w = cfg.volume_window
    return [
        FeatureSpec("volume_zscore", f"z-score of volume against the last {w} bars", "volume"),
        FeatureSpec(
            "obv_change", f"OBV change over {w} bars / volume of those bars, -1..1", "volume"
        ),
    ]


def _specs_candle(cfg: FeatureSettings) -> list[FeatureSpec]:
    return [
        FeatureSpec("candle_body", "(close - open) / (high - low), -1..1", "candle"),
        FeatureSpec("candle_upper_wick", "(high - max(open, close)) / (high - low)", "candle"),
        FeatureSpec("candle_lower_wick", "(min(open, close) - low) / (high - low)", "candle"),
        FeatureSpec("candle_range", "log(high / low)", "candle"),
    ]


def _specs_calendar(cfg: FeatureSettings) -> list[FeatureSpec]:
    return [
        FeatureSpec("hour_sin", "sin of the UTC hour of day of the candle open", "calendar"),
        FeatureSpec("hour_cos", "cos of the UTC hour of day of the candle open", "calendar"),
        FeatureSpec("dow_sin", "sin of the UTC day of week of the candle open", "calendar"),
        FeatureSpec("dow_cos", "cos of the UTC day of week of the candle open", "calendar"),
    ]


# ------------------------------------------------------------------------------- builders
def average_true_range(
    high: pd.Series, low: pd.Series, close: pd.Series, *, window: int
) -> pd.Series:
    """Wilder's ATR, equal to `ta.volatility.AverageTrueRange` but vectorised and NaN in warm-up.

    ta seeds the ATR with the mean of the first `window` true ranges, then loops in Python over
    `atr = (atr_prev * (window - 1) + tr) / window` (about 0.1 s on 33k rows) and reports 0.0 for
    the warm-up rows. That recursion is an `adjust=False` EWM with `alpha = 1 / window` started at
    the seed, so it runs here in pandas with identical values.
    """
    prev_close = close.shift(1)
    # max() skips the NaN previous close of the first row (skipna), as ta's DataFrame.max does.
    true_range = pd.concat(
        [high - low, (high - prev_close).abs(), (low - prev_close).abs()], axis=1
    ).max(axis=1)
    seeded = pd.Series(np.nan, index=close.index, dtype="float64")
    if len(close) >= window:
        seeded.iloc[window - 1] = true_range.iloc[:window].mean()
        seeded.iloc[window:] = true_range.iloc[window:]
    return seeded.ewm(alpha=1.0 / window, adjust=False).mean()


def _safe_ratio(numerator: pd.Series, denominator: pd.Series, *, fill: float) -> pd.Series:
    """numerator / denominator, `fill` where the denominator is 0 (NaN stays NaN)."""
    zero = denominator == 0
    return (numerator / denominator.mask(zero)).mask(zero, fill)


def _log(values: pd.Series) -> pd.Series:
    return pd.Series(np.log(values.to_numpy(dtype="float64")), index=values.index)


def _build_returns(candles: pd.DataFrame, cfg: FeatureSettings) -> Columns:
    close = candles["close"]
    return {f"log_return_{lag}": _log(close / close.shift(lag)) for lag in cfg.return_lags}


def _build_volatility(candles: pd.DataFrame, cfg: FeatureSettings) -> Columns:
    close = candles["close"]
    log_return = _log(close / close.shift(1))
    columns = {f"volatility_{w}": log_return.rolling(w).std() for w in cfg.volatility_windows}
    atr = average_true_range(candles["high"], candles["low"], close, window=cfg.atr_window)
    columns["atr_ratio"] = atr / close
    columns["bb_width"] = _bollinger(close, cfg)[1]
    return columns


def _bollinger(close: pd.Series, cfg: FeatureSettings) -> tuple[pd.Series, pd.Series]:
    """Bollinger %B and band width (in % of the middle band), as `ta.volatility.BollingerBands`.

    ta's rolling std (pandas' online update) carries rounding from the whole history: up to
    4e-8 relative on BTC prices, so the value at t depended on where the history began. A
    two-pass mean and std over each window (ddof=0, like ta) are exact per window.
    """
    window, values = cfg.bollinger_window, close.to_numpy(dtype="float64")
    pband = np.full(len(values), np.nan)
    width = np.full(len(values), np.nan)
    if len(values) >= window:
        windows = np.lib.stride_tricks.sliding_window_view(values, window)
        middle = windows.mean(axis=1)
        std = np.sqrt(((windows - middle[:, None]) ** 2).mean(axis=1))
        flat = std <= _FLAT_RELATIVE * middle  # constant closes: %B mid-band, zero width
        half_band = np.where(flat, 1.0, cfg.bollinger_std * std)
        pband[window - 1 :] = np.where(
            flat, 0.5, (values[window - 1 :] - middle) / half_band / 2 + 0.5
        )
        width[window - 1 :] = np.where(flat, 0.0, 200.0 * cfg.bollinger_std * std / middle)
    return pd.Series(pband, index=close.index), pd.Series(width, index=close.index)


def _build_momentum(candles: pd.DataFrame, cfg: FeatureSettings) -> Columns:
    close = candles["close"]
    high, low = candles["high"], candles["low"]
    stoch = StochasticOscillator(
        high, low, close, window=cfg.stoch_window, smooth_window=1, fillna=False
    )
    # ta gives 0/0 = NaN when high == low over the whole window; the close then sits mid-range.
    raw_k = stoch.stoch()
    complete = pd.Series(np.arange(len(close)) >= cfg.stoch_window - 1, index=close.index)
    stoch_k = raw_k.mask(complete & raw_k.isna(), 50.0)
    return {
        "rsi": RSIIndicator(close, window=cfg.rsi_window, fillna=False).rsi(),
        "stoch_k": stoch_k,
        "stoch_d": stoch_k.rolling(cfg.stoch_smooth).mean(),
        "bb_pband": _bollinger(close, cfg)[0],
    }


def _build_trend(candles: pd.DataFrame, cfg: FeatureSettings) -> Columns:
    close = candles["close"]
    macd = MACD(
        close,
        window_slow=cfg.macd_slow,
        window_fast=cfg.macd_fast,
        window_sign=cfg.macd_signal,
        fillna=False,  # True would back-fill warm-up rows and hide them from the NaN drop
    )
    columns = {
        "macd_line": macd.macd() / close,
        "macd_signal": macd.macd_signal() / close,
        "macd_hist": macd.macd_diff() / close,
    }
    for w in cfg.ma_windows:
        moving_average = SMAIndicator(close, window=w, fillna=False).sma_indicator()
        columns[f"ma_dist_{w}"] = close / moving_average - 1.0
    return columns


def _build_volume(candles: pd.DataFrame, cfg: FeatureSettings) -> Columns:
    volume, w = candles["volume"], cfg.volume_window
    mean, std = volume.rolling(w).mean(), volume.rolling(w).std()
    flat = std <= _FLAT_RELATIVE * mean  # constant (e.g. all-zero) volume in the window
    zscore = ((volume - mean) / std.mask(flat)).mask(flat, 0.0)
    # Window-bounded OBV: the change of on-balance volume over w bars (Granville's rule: an
    # unchanged close adds nothing; ta's OBV counts it as up volume and only offers the unbounded
    # cumulative sum), divided by the volume traded in those bars.
    signed = np.sign(candles["close"].diff()) * volume
    obv_change = _safe_ratio(signed.rolling(w).sum(), volume.rolling(w).sum(), fill=0.0)
    return {"volume_zscore": zscore, "obv_change": obv_change}


def _build_candle(candles: pd.DataFrame, cfg: FeatureSettings) -> Columns:
    open_, high, low, close = (candles[c] for c in ("open", "high", "low", "close"))
    span = high - low
    return {
        "candle_body": _safe_ratio(close - open_, span, fill=0.0),
        "candle_upper_wick": _safe_ratio(high - np.maximum(open_, close), span, fill=0.0),
        "candle_lower_wick": _safe_ratio(np.minimum(open_, close) - low, span, fill=0.0),
        "candle_range": _log(high / low),
    }


def _build_calendar(candles: pd.DataFrame, cfg: FeatureSettings) -> Columns:
    index = pd.DatetimeIndex(candles.index)
    hour = (index.hour + index.minute / 60.0).to_numpy(dtype="float64")
    day = index.day_of_week.to_numpy(dtype="float64")
    columns = {
        "hour_sin": np.sin(2 * np.pi * hour / 24.0),
        "hour_cos": np.cos(2 * np.pi * hour / 24.0),
        "dow_sin": np.sin(2 * np.pi * day / 7.0),
        "dow_cos": np.cos(2 * np.pi * day / 7.0),
    }
    return {name: pd.Series(values, index=candles.index) for name, values in columns.items()}


_GROUPS: dict[
    FeatureGroup,
    tuple[
        Callable[[FeatureSettings], list[FeatureSpec]],
        Callable[[pd.DataFrame, FeatureSettings], Columns],
    ],
] = {
    "returns": (_specs_returns, _build_returns),
    "volatility": (_specs_volatility, _build_volatility),
    "momentum": (_specs_momentum, _build_momentum),
    "trend": (_specs_trend, _build_trend),
    "volume": (_specs_volume, _build_volume),
    "candle": (_specs_candle, _build_candle),
    "calendar": (_specs_calendar, _build_calendar),
}


def _enabled_groups(cfg: FeatureSettings) -> list[FeatureGroup]:
    """Enabled groups in the canonical FEATURE_GROUPS order, whatever the config's order."""
    return [group for group in FEATURE_GROUPS if group in cfg.groups]


# ------------------------------------------------------------------------------- public API
def feature_specs(cfg: FeatureSettings) -> list[FeatureSpec]:
    """Name, description and group of every column `build_features(…, cfg)` returns, in order."""
    return [spec for group in _enabled_groups(cfg) for spec in _GROUPS[group][0](cfg)]


def build_features(ohlcv: pd.DataFrame, cfg: FeatureSettings) -> pd.DataFrame:
    """Causal, scale-free float64 features, one row per candle (warm-up rows NaN, not dropped).

    Raises:
        DataValidationError: the candles break the OHLCV contract (see `data.schema`).
    """
    candles = validate_ohlcv(ohlcv)
    columns: Columns = {}
    for group in _enabled_groups(cfg):
        columns.update(_GROUPS[group][1](candles, cfg))
    names = [spec.name for spec in feature_specs(cfg)]
    features = pd.DataFrame({name: columns[name] for name in names}, index=candles.index)
    features = features.astype("float64")
    features.index = ohlcv.index
    logger.debug("Built %d features for %d candles", len(names), len(features))
    return features


def _ema_bars(alpha: float) -> int:
    """Bars after which an EWM's seed keeps less than EMA_TOLERANCE of its weight.

    >>> _ema_bars(0.5)
    50
    """
    return math.ceil(math.log(EMA_TOLERANCE) / math.log(1.0 - alpha))


def _group_warmup(group: FeatureGroup, cfg: FeatureSettings) -> int:
    """Candles of history one group needs for its last row to be final (see `warmup_bars`)."""
    atr = cfg.atr_window + _ema_bars(1.0 / cfg.atr_window)  # seeded at row atr_window - 1
    rsi = 1 + max(cfg.rsi_window, _ema_bars(1.0 / cfg.rsi_window))  # seeded at row 1 (diff)
    # MACD's EMAs start at row 0; its signal EMA starts where the line does (row macd_slow - 1).
    macd = 1 + max(
        _ema_bars(2.0 / (cfg.macd_slow + 1)),
        cfg.macd_slow - 1 + _ema_bars(2.0 / (cfg.macd_signal + 1)),
    )
    needs: dict[FeatureGroup, int] = {
        "returns": max(cfg.return_lags) + 1,
        "volatility": max(max(cfg.volatility_windows) + 1, atr, cfg.bollinger_window),
        "momentum": max(rsi, cfg.stoch_window + cfg.stoch_smooth - 1, cfg.bollinger_window),
        "trend": max(macd, max(cfg.ma_windows)),
        "volume": cfg.volume_window + 1,
        "candle": 1,
        "calendar": 1,
    }
    return needs[group]


def warmup_bars(cfg: FeatureSettings) -> int:
    """Candles of history needed for the last row's features to equal the full-history values.

    Rolling windows are exact once full; exponential averages (RSI, MACD, ATR) forget their
    seed geometrically, so they get enough extra bars for the seed's weight to fall below
    EMA_TOLERANCE (about 500 candles with the defaults). With this many candles the last row
    also has no NaN.
    """
    return max(_group_warmup(group, cfg) for group in _enabled_groups(cfg))
