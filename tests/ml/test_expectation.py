"""Expectation bands: quantiles of windowed net returns, computed here by hand."""

from __future__ import annotations

import numpy as np
import pytest

from ml.expectation import BAND_WINDOWS_BARS, return_bands

# simple per-candle net returns; their 2-candle compounded returns, sorted, are
# -0.01 (1.1*0.9), -0.0025 (1.05*0.95), 0.05 (1.0*1.05), 0.08 (0.9*1.2), 0.2 (1.2*1.0)
SIMPLE = [0.1, -0.1, 0.2, 0.0, 0.05, -0.05]


def test_return_bands_quantiles_of_two_candle_windows_by_hand() -> None:
    (band,) = return_bands(np.log1p(SIMPLE), windows=[2])
    assert (band.window_bars, band.n_windows) == (2, 5)
    # numpy's linear quantile: position q * (5 - 1) between the sorted values
    assert band.p01 == pytest.approx(-0.01 + 0.04 * 0.0075)
    assert band.p05 == pytest.approx(-0.01 + 0.2 * 0.0075)
    assert band.p50 == pytest.approx(0.05)
    assert band.p95 == pytest.approx(0.08 + 0.8 * 0.12)
    assert band.p99 == pytest.approx(0.08 + 0.96 * 0.12)


def test_return_bands_one_candle_windows_are_the_returns_themselves() -> None:
    (band,) = return_bands(np.log1p(SIMPLE), windows=[1])
    assert band.n_windows == 6
    assert band.p50 == pytest.approx((0.0 + 0.05) / 2)  # between the 3rd and 4th of 6
    assert band.p99 <= max(SIMPLE) and band.p01 >= min(SIMPLE)


def test_return_bands_skip_windows_longer_than_a_third_of_the_path() -> None:
    assert [b.window_bars for b in return_bands(np.log1p(SIMPLE), windows=[2, 3])] == [2]
    path = np.zeros(3 * 72)
    assert [b.window_bars for b in return_bands(path)] == [24, 72]
    assert return_bands(np.zeros(3 * 24 - 1)) == ()
    assert BAND_WINDOWS_BARS == (24, 72, 168, 720)


def test_return_bands_are_ordered_and_compound_log_returns() -> None:
    rng = np.random.default_rng(7)
    log_net = rng.normal(0.0, 0.01, size=2000)
    for band in return_bands(log_net):
        assert band.p01 <= band.p05 <= band.p50 <= band.p95 <= band.p99
        assert band.n_windows == 2000 - band.window_bars + 1
    # a constant path: every window returns exactly the compounded per-candle return
    (band,) = return_bands(np.log1p(np.full(30, 0.01)), windows=[10])
    assert band.p01 == pytest.approx(1.01**10 - 1) and band.p99 == pytest.approx(1.01**10 - 1)
