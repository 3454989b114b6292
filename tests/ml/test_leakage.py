"""Tests of ml.leakage.check_lookahead: passes on the real features, catches leaky ones."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pandas as pd
import pytest

from core.errors import LookAheadError, NotEnoughDataError
from core.settings import FeatureSettings
from ml.features import build_features
from ml.leakage import check_lookahead
from tests.conftest import log_has
from tests.factories import make_ohlcv
from tests.ml.test_features import load_cdd_candles
from tests.prerequisites import require_shared_file

DEFAULT = FeatureSettings()
Build = Callable[[pd.DataFrame], pd.DataFrame]


def _with(extra: Callable[[pd.DataFrame], pd.Series], name: str) -> Build:
    """build_features plus one extra column computed by `extra`."""

    def build(candles: pd.DataFrame) -> pd.DataFrame:
        features = build_features(candles, DEFAULT)
        features[name] = extra(candles)
        return features

    return build


def _centred_mean(candles: pd.DataFrame) -> pd.Series:
    return candles["close"].rolling(5, center=True).mean() / candles["close"]


def _next_return(candles: pd.DataFrame) -> pd.Series:
    return candles["close"].shift(-1) / candles["close"] - 1


def _whole_history_zscore(candles: pd.DataFrame) -> pd.Series:
    volume = candles["volume"]
    return (volume - volume.mean()) / volume.std()


def test_check_lookahead_passes_on_build_features(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ml.leakage")
    check_lookahead(make_ohlcv(1500), lambda candles: build_features(candles, DEFAULT))
    assert log_has(caplog, "Look-ahead check passed: 31 features", logging.INFO)


def test_check_lookahead_passes_on_real_btc() -> None:
    candles = load_cdd_candles(require_shared_file("Binance_BTCUSDT_1h.csv")).iloc[-6000:]
    check_lookahead(candles, lambda c: build_features(c, DEFAULT), n_cuts=8, seed=3)


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        (_centred_mean, "centred_mean_5"),
        (_next_return, "next_return"),
        (_whole_history_zscore, "volume_zscore_full"),
    ],
)
def test_check_lookahead_catches_a_leaky_feature(extra, name: str) -> None:
    candles = make_ohlcv(600)
    with pytest.raises(LookAheadError, match=name) as caught:
        check_lookahead(candles, _with(extra, name))
    message = str(caught.value)
    assert message.startswith("1 feature(s) use future candles")  # only the leaky one is named
    assert "rsi" not in message


def test_check_lookahead_names_the_first_changed_row() -> None:
    candles = make_ohlcv(300)
    with pytest.raises(LookAheadError) as caught:
        check_lookahead(candles, _with(_next_return, "next_return"), n_cuts=1)
    # The only cut drops the newest candle, so the first changed row is the one before it.
    assert f"first at {candles.index[-2]}" in str(caught.value)
    assert f"candles up to {candles.index[-2]}" in str(caught.value)


def test_check_lookahead_names_every_leaky_feature() -> None:
    def build(candles: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {"centred": _centred_mean(candles), "next": _next_return(candles)},
            index=candles.index,
        )

    with pytest.raises(LookAheadError, match=r"^2 feature\(s\) use future candles") as caught:
        check_lookahead(make_ohlcv(200), build)
    assert "'centred'" in str(caught.value) and "'next'" in str(caught.value)


def test_check_lookahead_catches_columns_that_depend_on_length() -> None:
    def build(candles: pd.DataFrame) -> pd.DataFrame:
        features = build_features(candles, FeatureSettings(groups=("returns",)))
        return features if len(candles) > 150 else features.drop(columns="log_return_24")

    with pytest.raises(LookAheadError, match="'log_return_24'"):
        check_lookahead(make_ohlcv(200), build, n_cuts=10)


def test_check_lookahead_is_reproducible_and_seeded() -> None:
    seen: list[list[int]] = []

    def build(candles: pd.DataFrame) -> pd.DataFrame:
        seen[-1].append(len(candles))
        return build_features(candles, FeatureSettings(groups=("candle",)))

    for seed in (0, 0, 1):
        seen.append([])
        check_lookahead(make_ohlcv(500), build, n_cuts=4, seed=seed)
    assert seen[0] == seen[1] != seen[2]
    assert len(seen[0]) == 5 and seen[0][0] == 500 and 499 in seen[0]


def test_check_lookahead_rejects_bad_arguments() -> None:
    with pytest.raises(NotEnoughDataError, match="at least 3 candles"):
        check_lookahead(make_ohlcv(2), lambda c: build_features(c, DEFAULT))
    with pytest.raises(ValueError, match="n_cuts"):
        check_lookahead(make_ohlcv(50), lambda c: build_features(c, DEFAULT), n_cuts=0)
