"""PredictionFeed: bar size, target validation, list loading equal to PandasData, past-only ATR."""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError, DataValidationError
from strategy.feeds import PredictionFeed, add_atr, backtrader_timeframe, make_prediction_feed
from tests.factories import make_ohlcv
from tests.strategy.helpers import with_targets


class _Recorder(bt.Strategy):
    """Records every line of every bar."""

    def __init__(self):
        self.rows = []

    def next(self):
        d = self.data
        self.rows.append(
            (
                d.datetime[0],
                d.open[0],
                d.high[0],
                d.low[0],
                d.close[0],
                d.volume[0],
                d.target_side[0],
                d.target_size[0],
                d.atr[0],
            )
        )


class _PlainFeed(bt.feeds.PandasData):
    """backtrader's own per-bar `iloc` loading, with the same extra lines."""

    lines = ("target_side", "target_size", "atr")
    params = (("target_side", -1), ("target_size", -1), ("atr", -1))


def _record(feed):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed)
    cerebro.addstrategy(_Recorder)
    return cerebro.run()[0].rows


@pytest.mark.parametrize(
    ("timeframe", "expected"),
    [
        ("1m", (bt.TimeFrame.Minutes, 1)),
        ("15m", (bt.TimeFrame.Minutes, 15)),
        ("1h", (bt.TimeFrame.Minutes, 60)),
        ("4h", (bt.TimeFrame.Minutes, 240)),
        ("1d", (bt.TimeFrame.Days, 1)),
    ],
)
def test_backtrader_timeframe_maps_each_timeframe(timeframe, expected):
    assert backtrader_timeframe(timeframe) == expected


def test_backtrader_timeframe_rejects_unknown():
    with pytest.raises(ConfigError, match="Unsupported timeframe"):
        backtrader_timeframe("2h")


def test_make_prediction_feed_sets_bar_size():
    frame = with_targets(make_ohlcv(10), np.zeros(10))
    feed = make_prediction_feed(frame, timeframe="1h")
    assert (feed.p.timeframe, feed.p.compression) == (bt.TimeFrame.Minutes, 60)


def test_prediction_feed_loads_same_values_as_pandas_data():
    side = np.random.default_rng(5).integers(-1, 2, 300)
    frame = add_atr(with_targets(make_ohlcv(300), side, np.linspace(0, 1, 300)), window=5)
    ours = _record(make_prediction_feed(frame, timeframe="1h"))
    plain = _record(_PlainFeed(dataname=frame, openinterest=None))
    assert len(ours) == 300
    np.testing.assert_array_equal(np.array(ours), np.array(plain))  # NaNs compare equal here


def test_prediction_feed_without_atr_column_gives_nan_atr():
    frame = with_targets(make_ohlcv(5), [0, 1, 1, -1, 0], [0, 0.6, 0.6, 1, 0])
    rows = _record(make_prediction_feed(frame, timeframe="1h"))
    assert all(math.isnan(row[-1]) for row in rows)
    assert [row[-3] for row in rows] == [0, 1, 1, -1, 0]
    assert [row[-2] for row in rows] == [0, 0.6, 0.6, 1, 0]


def test_prediction_feed_datetime_is_utc_open_time():
    frame = with_targets(make_ohlcv(3, start="2024-03-01 05:00"), np.zeros(3))
    rows = _record(PredictionFeed(dataname=frame, openinterest=None))
    assert bt.num2date(rows[0][0]) == pd.Timestamp("2024-03-01 05:00").to_pydatetime()


@pytest.mark.parametrize("missing", ["target_side", "target_size"])
def test_make_prediction_feed_requires_target_columns(missing):
    frame = with_targets(make_ohlcv(10), np.zeros(10)).drop(columns=missing)
    with pytest.raises(DataValidationError, match=f"{missing}.*positions_from_proba"):
        make_prediction_feed(frame, timeframe="1h")


def test_make_prediction_feed_no_longer_takes_probabilities():
    frame = make_ohlcv(10).assign(proba_up=0.6)  # targets come from the policy, not the feed
    with pytest.raises(DataValidationError, match="target_side"):
        make_prediction_feed(frame, timeframe="1h")


@pytest.mark.parametrize("bad", [2.0, 0.5, -1.5, np.nan, np.inf])
def test_make_prediction_feed_rejects_a_side_other_than_minus_one_zero_one(bad):
    side = np.zeros(10)
    side[4] = bad
    frame = with_targets(make_ohlcv(10), side)
    with pytest.raises(DataValidationError, match="2021-01-01 04:00"):
        make_prediction_feed(frame, timeframe="1h")


@pytest.mark.parametrize("bad", [1.5, -0.1, np.inf, np.nan])
def test_make_prediction_feed_rejects_out_of_range_size(bad):
    size = np.full(10, 0.5)
    size[4] = bad
    frame = with_targets(make_ohlcv(10), np.ones(10), size)
    with pytest.raises(DataValidationError, match="2021-01-01 04:00"):
        make_prediction_feed(frame, timeframe="1h")


def test_make_prediction_feed_rejects_unordered_candles():
    frame = with_targets(make_ohlcv(10), np.zeros(10)).iloc[::-1]
    with pytest.raises(DataValidationError, match="out of order"):
        make_prediction_feed(frame, timeframe="1h")


def test_make_prediction_feed_rejects_wrong_timeframe_grid():
    frame = with_targets(make_ohlcv(10, start="2021-01-01 00:30"), np.zeros(10))
    with pytest.raises(DataValidationError, match="1h grid"):
        make_prediction_feed(frame, timeframe="1h")


def test_make_prediction_feed_rejects_negative_atr():
    frame = with_targets(make_ohlcv(10), np.zeros(10))
    frame["atr"] = -1.0
    with pytest.raises(DataValidationError, match="'atr'"):
        make_prediction_feed(frame, timeframe="1h")


def test_add_atr_is_past_only():
    candles = make_ohlcv(400)
    full = add_atr(candles, window=14)["atr"]
    truncated = add_atr(candles.iloc[:250], window=14)["atr"]
    pd.testing.assert_series_equal(full.iloc[:250], truncated)
    assert full.iloc[:13].isna().all() and full.iloc[13:].gt(0).all()
