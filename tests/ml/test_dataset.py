"""Tests of ml.dataset: row alignment, counted drops, dead-band rows and inference features."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from core.errors import NotEnoughDataError
from core.settings import FeatureSettings, MLSettings
from ml.dataset import Dataset, latest_features, make_dataset
from ml.features import build_features, warmup_bars
from ml.labels import BARRIER_TIME, make_triple_barrier_labels, triple_barrier_outcome
from tests.conftest import log_has
from tests.factories import make_ohlcv

SMALL = FeatureSettings(groups=("returns", "volatility", "candle"), atr_window=5)
SMALL_NAN_ROWS = 72  # volatility_72 needs 72 one-bar returns, i.e. candles 0..72


def _ml(*, horizon_bars: int = 1, **labels: object) -> MLSettings:
    return MLSettings.model_validate(
        {
            "features": SMALL,
            "labels": {"horizon_bars": horizon_bars, **labels},
            "walk_forward": {"gap_bars": horizon_bars},
        }
    )


def test_make_dataset_aligns_rows_and_counts_drops() -> None:
    candles = make_ohlcv(400)
    dataset = make_dataset(candles, _ml(horizon_bars=3))
    warmup = SMALL_NAN_ROWS
    assert dataset.warmup_rows_dropped == warmup
    assert dataset.unlabeled_rows_dropped == 3
    assert len(dataset.X) == 400 - warmup - 3
    assert dataset.X.index.equals(candles.index[warmup:-3])
    for series in (dataset.y, dataset.forward_return, dataset.trainable):
        assert series.index.equals(dataset.X.index)
    assert dataset.X.index.name == "timestamp"
    assert not dataset.X.isna().any().any()


def test_make_dataset_label_at_t_uses_close_at_t_plus_horizon() -> None:
    candles = make_ohlcv(300)
    dataset = make_dataset(candles, _ml(horizon_bars=2))
    close = candles["close"]
    positions = candles.index.get_indexer(dataset.X.index)
    future = close.to_numpy()[positions + 2]
    now = close.to_numpy()[positions]
    np.testing.assert_array_equal(dataset.y.to_numpy(), (future > now).astype(int))
    np.testing.assert_allclose(dataset.forward_return.to_numpy(), future / now - 1)


def test_make_dataset_types() -> None:
    dataset = make_dataset(make_ohlcv(200), _ml())
    assert isinstance(dataset, Dataset)
    assert dataset.y.dtype == np.int64
    assert set(dataset.y.unique()) == {0, 1}
    assert dataset.trainable.dtype == bool
    assert (dataset.X.dtypes == "float64").all()
    assert list(dataset.X.columns) == list(build_features(make_ohlcv(5), SMALL).columns)


def test_make_dataset_deadband_rows_keep_sign_but_are_not_trainable() -> None:
    dataset = make_dataset(make_ohlcv(600), _ml(deadband=0.004))
    small = dataset.forward_return.abs() < 0.004
    assert small.any() and (~small).any()
    pd.testing.assert_series_equal(dataset.trainable, ~small, check_names=False)
    # The dead-band rows are still rows, with the label their sign gives.
    expected = (dataset.forward_return[small] > 0).astype("int64")
    pd.testing.assert_series_equal(dataset.y[small], expected, check_names=False)


def test_make_dataset_without_deadband_trains_on_every_row() -> None:
    assert make_dataset(make_ohlcv(200), _ml()).trainable.all()


def test_make_dataset_uses_triple_barrier_when_configured() -> None:
    candles = make_ohlcv(500, seed=5)
    cfg = _ml(method="triple_barrier", horizon_bars=6, take_profit_atr=1.0, stop_loss_atr=1.0)
    dataset = make_dataset(candles, cfg)
    labels = make_triple_barrier_labels(
        candles, horizon_bars=6, take_profit_atr=1.0, stop_loss_atr=1.0, atr_window=5
    )
    pd.testing.assert_series_equal(
        dataset.y, labels.loc[dataset.X.index].astype("int64"), check_names=False
    )
    direction = make_dataset(candles, _ml(horizon_bars=6)).y
    assert not dataset.y.equals(direction.loc[dataset.y.index])


def test_make_dataset_triple_barrier_deadband_applies_to_time_barrier_only() -> None:
    candles = make_ohlcv(500, seed=5)
    options = {"horizon_bars": 4, "take_profit_atr": 1.0, "stop_loss_atr": 1.0}
    dataset = make_dataset(candles, _ml(method="triple_barrier", deadband=0.01, **options))
    _, barrier = triple_barrier_outcome(candles, atr_window=5, **options)
    timed_out = barrier.loc[dataset.X.index] == BARRIER_TIME
    small = dataset.forward_return.abs() < 0.01
    # A touched barrier is a real move: trainable even if the horizon return ended small.
    assert (small & ~timed_out).any()
    assert dataset.trainable[~timed_out].all()
    # A time-barrier row with a move inside the dead-band is not trainable; a larger one is.
    assert (small & timed_out).any() and (~small & timed_out).any()
    assert not dataset.trainable[small & timed_out].any()
    assert dataset.trainable[~small & timed_out].all()


def test_make_dataset_logs_the_drops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ml.dataset")
    make_dataset(make_ohlcv(300), _ml(horizon_bars=2))
    assert log_has(caplog, f"dropped {SMALL_NAN_ROWS} warm-up and 2 unlabeled", logging.INFO)


def test_make_dataset_too_short_raises_not_enough_data() -> None:
    with pytest.raises(NotEnoughDataError, match=r"features need \d+ candles"):
        make_dataset(make_ohlcv(20), MLSettings())


def test_latest_features_keeps_the_newest_unlabeled_candle() -> None:
    candles = make_ohlcv(700)
    features = latest_features(candles, FeatureSettings())
    assert features.index[-1] == candles.index[-1]
    assert features.index[0] == candles.index[199]  # SMA(200) is the last feature to appear
    assert not features.isna().any().any()


def test_latest_features_warns_below_warmup(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ml.dataset")
    latest_features(make_ohlcv(250), FeatureSettings())
    assert log_has(caplog, "the newest row may differ", logging.WARNING)
    caplog.clear()
    latest_features(make_ohlcv(warmup_bars(FeatureSettings())), FeatureSettings())
    assert not caplog.records


def test_latest_features_too_short_raises_with_the_needed_count() -> None:
    need = warmup_bars(FeatureSettings())
    with pytest.raises(NotEnoughDataError, match=f"need {need} candles of history, got 100"):
        latest_features(make_ohlcv(100), FeatureSettings())
