"""Tests of ml.features: causality, warm-up, scale invariance, specs and hand-checked values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ta.momentum import RSIIndicator, StochasticOscillator
from ta.trend import MACD
from ta.volatility import AverageTrueRange, BollingerBands

from core.errors import DataValidationError
from core.settings import FEATURE_GROUPS, FeatureSettings
from data.schema import epoch_ms_to_index
from ml.features import (
    FeatureSpec,
    average_true_range,
    build_features,
    feature_specs,
    warmup_bars,
)
from tests.factories import make_ohlcv
from tests.prerequisites import require_shared_file

DEFAULT = FeatureSettings()


def load_cdd_candles(path: Path) -> pd.DataFrame:
    """A shared CryptoDataDownload file as canonical candles (test-only reader).

    Sorts ascending, converts the seconds rows to ms, keeps the precise (ms) row of each
    duplicated hour and drops the bogus first candle (see the shared data README).
    """
    raw = pd.read_csv(path)
    unix = raw["unix"].to_numpy(dtype="float64")
    raw = raw.assign(
        ms=np.where(unix < 1e11, unix * 1000, unix).astype("int64"), precise=unix >= 1e11
    )
    raw = raw.sort_values(["ms", "precise"]).drop_duplicates("ms", keep="last").iloc[1:]
    volume = next(c for c in raw.columns if c.startswith("Volume ") and not c.endswith("USDT"))
    columns = {c: raw[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close")}
    frame = pd.DataFrame({**columns, "volume": raw[volume].to_numpy(dtype="float64")})
    frame.index = epoch_ms_to_index(raw["ms"].to_numpy())
    return frame


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return load_cdd_candles(require_shared_file("Binance_BTCUSDT_1h.csv"))


def assert_frames_match(actual: pd.DataFrame, expected: pd.DataFrame, *, rtol: float) -> None:
    """Same columns and index; values equal to `rtol` (NaN == NaN), naming the first bad column."""
    assert list(actual.columns) == list(expected.columns)
    assert actual.index.equals(expected.index)
    for name in expected.columns:
        np.testing.assert_allclose(
            actual[name].to_numpy(),
            expected[name].to_numpy(),
            rtol=rtol,
            atol=rtol,
            equal_nan=True,
            err_msg=f"feature {name!r}",
        )


# ----------------------------------------------------------------------------- causality
@pytest.mark.parametrize("keep", [30, 250, 600, 1111, 1499])
def test_build_features_truncation_invariant_for_every_feature(keep: int) -> None:
    candles = make_ohlcv(1500)
    full = build_features(candles, DEFAULT)
    truncated = build_features(candles.iloc[:keep], DEFAULT)
    assert_frames_match(truncated, full.iloc[:keep], rtol=1e-12)


def test_build_features_truncation_invariant_on_real_btc(btc: pd.DataFrame) -> None:
    full = build_features(btc, DEFAULT)
    for keep in (700, 9_001, 20_000, len(btc) - 1):
        assert_frames_match(build_features(btc.iloc[:keep], DEFAULT), full.iloc[:keep], rtol=1e-12)


def test_build_features_warmup_rows_are_nan_not_filled() -> None:
    features = build_features(make_ohlcv(400), DEFAULT)
    assert features["ma_dist_200"].iloc[:199].isna().all()
    assert features["ma_dist_200"].iloc[199:].notna().all()
    assert features["log_return_24"].iloc[:24].isna().all()
    assert features["volatility_72"].iloc[:72].isna().all()


# ----------------------------------------------------------------------------- warm-up
@pytest.mark.parametrize(
    "cfg",
    [
        DEFAULT,
        FeatureSettings(rsi_window=30, macd_fast=5, macd_slow=50, macd_signal=20, atr_window=40),
        FeatureSettings(groups=("returns", "calendar"), return_lags=(1, 5)),
    ],
    ids=["default", "long-ema", "no-ema"],
)
def test_warmup_bars_last_row_equals_full_history(cfg: FeatureSettings) -> None:
    candles = make_ohlcv(4000, seed=7)
    full_last = build_features(candles, cfg).iloc[-1]
    short_last = build_features(candles.iloc[-warmup_bars(cfg) :], cfg).iloc[-1]
    assert short_last.notna().all()
    np.testing.assert_allclose(short_last.to_numpy(), full_last.to_numpy(), rtol=1e-9, atol=0)


def test_warmup_bars_last_rows_equal_full_history_on_real_btc(btc: pd.DataFrame) -> None:
    need = warmup_bars(DEFAULT)
    full = build_features(btc, DEFAULT)
    for end in (need + 5, 12_345, 27_000, len(btc)):
        short_last = build_features(btc.iloc[end - need : end], DEFAULT).iloc[-1]
        assert short_last.notna().all(), end
        np.testing.assert_allclose(short_last, full.iloc[end - 1], rtol=1e-9, atol=0)


def test_warmup_bars_too_few_candles_change_the_last_row() -> None:
    """Shows the warm-up is needed: with a quarter of it the EMA features still differ."""
    candles = make_ohlcv(3000)
    full_last = build_features(candles, DEFAULT).iloc[-1]
    short_last = build_features(candles.iloc[-(warmup_bars(DEFAULT) // 4) :], DEFAULT).iloc[-1]
    relative = ((short_last - full_last) / full_last).abs()
    assert relative["rsi"] > 1e-9
    assert relative["macd_signal"] > 1e-9


def test_warmup_bars_grows_with_the_longest_window() -> None:
    assert warmup_bars(FeatureSettings(ma_windows=(10, 2000))) == 2000
    assert warmup_bars(FeatureSettings(groups=("candle",))) == 1
    assert warmup_bars(FeatureSettings(groups=("returns",), return_lags=(1, 48))) == 49


# ----------------------------------------------------------------------------- scale-free
def test_build_features_unchanged_when_prices_and_volume_are_rescaled() -> None:
    candles = make_ohlcv(1200, price=4_000.0)
    scaled = candles.copy()
    scaled[["open", "high", "low", "close"]] *= 25.0
    scaled["volume"] *= 1000.0
    assert_frames_match(
        build_features(scaled, DEFAULT), build_features(candles, DEFAULT), rtol=1e-9
    )


# ----------------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    "cfg",
    [
        DEFAULT,
        FeatureSettings(groups=("momentum",)),
        FeatureSettings(groups=("calendar", "returns"), return_lags=(3, 1, 3)),
        FeatureSettings(groups=("trend", "volume", "candle"), ma_windows=(5, 20)),
        FeatureSettings(groups=("volatility",), volatility_windows=(6,)),
    ],
)
def test_feature_specs_match_build_features_columns(cfg: FeatureSettings) -> None:
    specs = feature_specs(cfg)
    features = build_features(make_ohlcv(300), cfg)
    assert [spec.name for spec in specs] == list(features.columns)
    assert {spec.group for spec in specs} == set(cfg.groups)
    assert (features.dtypes == "float64").all()


def test_feature_specs_are_described_and_unique() -> None:
    specs = feature_specs(DEFAULT)
    assert len(specs) == len({spec.name for spec in specs}) == 31
    assert all(isinstance(spec, FeatureSpec) and spec.description for spec in specs)
    assert [spec.group for spec in specs] == sorted(
        (spec.group for spec in specs), key=FEATURE_GROUPS.index
    )


def test_build_features_keeps_the_input_index() -> None:
    candles = make_ohlcv(50)
    features = build_features(candles, DEFAULT)
    assert features.index.equals(candles.index)
    assert features.index.name == "timestamp"


# ----------------------------------------------------------------------------- values
def test_build_features_hand_checked_values() -> None:
    index = epoch_ms_to_index([1_609_459_200_000 + i * 3_600_000 for i in range(3)])  # Fri 00:00
    candles = pd.DataFrame(
        {
            "open": [100.0, 100.0, 110.0],
            "high": [101.0, 112.0, 110.0],
            "low": [99.0, 98.0, 104.0],
            "close": [100.0, 110.0, 105.0],
            "volume": [1.0, 2.0, 3.0],
        },
        index=index,
    )
    features = build_features(candles, FeatureSettings(groups=("returns", "candle", "calendar")))
    assert features["log_return_1"].iloc[2] == pytest.approx(np.log(105 / 110))
    assert features["log_return_2"].iloc[2] == pytest.approx(np.log(105 / 100))
    assert features["candle_body"].iloc[1] == pytest.approx(10 / 14)
    assert features["candle_upper_wick"].iloc[1] == pytest.approx(2 / 14)
    assert features["candle_lower_wick"].iloc[1] == pytest.approx(2 / 14)
    assert features["candle_body"].iloc[2] == pytest.approx(-5 / 6)
    assert features["candle_range"].iloc[0] == pytest.approx(np.log(101 / 99))
    assert features["hour_sin"].iloc[2] == pytest.approx(np.sin(2 * np.pi * 2 / 24))
    assert features["dow_cos"].iloc[0] == pytest.approx(np.cos(2 * np.pi * 4 / 7))  # Friday


def test_build_features_match_ta_reference_indicators(btc: pd.DataFrame) -> None:
    candles = btc.iloc[-3000:]
    close, high, low = candles["close"], candles["high"], candles["low"]
    features = build_features(candles, DEFAULT)
    atr = AverageTrueRange(high, low, close, window=14).average_true_range()
    bands = BollingerBands(close, window=20, window_dev=2.0)
    stoch = StochasticOscillator(high, low, close, window=14, smooth_window=3)
    macd = MACD(close)
    pairs = {
        "atr_ratio": atr / close,
        "bb_pband": bands.bollinger_pband(),
        "bb_width": bands.bollinger_wband(),
        "rsi": RSIIndicator(close, window=14).rsi(),
        "stoch_k": stoch.stoch(),
        "stoch_d": stoch.stoch_signal(),
        "macd_hist": macd.macd_diff() / close,
    }
    for name, reference in pairs.items():
        ours = features[name].iloc[30:]
        np.testing.assert_allclose(ours, reference.iloc[30:], rtol=1e-6, atol=1e-7, err_msg=name)


def test_average_true_range_is_nan_during_warmup_and_short_input_safe() -> None:
    candles = make_ohlcv(20)
    atr = average_true_range(candles["high"], candles["low"], candles["close"], window=14)
    assert atr.iloc[:13].isna().all()
    assert atr.iloc[13:].gt(0).all()
    short = average_true_range(
        candles["high"][:5], candles["low"][:5], candles["close"][:5], window=14
    )
    assert short.isna().all()


# ----------------------------------------------------------------------------- robustness
def test_build_features_flat_candles_and_zero_volume_give_finite_values() -> None:
    candles = make_ohlcv(600)
    flat = candles.index[300:400]
    candles.loc[flat, ["open", "high", "low", "close"]] = candles["close"].iloc[299]
    candles.loc[flat, "volume"] = 0.0
    features = build_features(candles, DEFAULT)
    assert not np.isinf(features.to_numpy()).any()
    assert not np.isnan(features.iloc[200:].to_numpy()).any()  # no NaN after the warm-up
    inside = features.loc[flat[-1]]
    assert inside["volume_zscore"] == 0.0
    assert inside["obv_change"] == 0.0
    assert inside["stoch_k"] == 50.0
    assert inside["bb_pband"] == 0.5
    assert inside["candle_body"] == 0.0
    assert inside["volatility_72"] == 0.0
    assert features.loc[flat[50], "volatility_72"] > 0.0  # the window still holds moves


def test_build_features_empty_and_tiny_inputs_are_all_nan_rows() -> None:
    for n in (0, 1, 5):
        features = build_features(make_ohlcv(n) if n else make_ohlcv(1).iloc[:0], DEFAULT)
        assert len(features) == n
        assert list(features.columns) == [spec.name for spec in feature_specs(DEFAULT)]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.drop(columns="volume"), "lack columns"),
        (lambda df: df.iloc[::-1], "out of order"),
        (lambda df: df.assign(close=-df["close"]), "non_positive"),
        (lambda df: df.tz_localize(None), "tz-aware"),
    ],
    ids=["missing-column", "unsorted", "negative-price", "naive-index"],
)
def test_build_features_rejects_bad_candles(mutate, message: str) -> None:
    with pytest.raises(DataValidationError, match=message):
        build_features(mutate(make_ohlcv(50)), DEFAULT)
