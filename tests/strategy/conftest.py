"""Fixtures for strategy tests: the real BTC 1h candles (cleaned by data.quality)."""

from __future__ import annotations

import pandas as pd
import pytest

from core.settings import QualitySettings
from data.files import read_candle_file
from data.quality import clean_candles
from tests.conftest import SHARED_DATA

BTC_FILE = SHARED_DATA / "Binance_BTCUSDT_1h.csv"


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    """The cleaned shared BTC/USDT 1h candles (about 33k rows), loaded once per session."""
    if not BTC_FILE.is_file():
        pytest.skip(f"shared data not found at {BTC_FILE}")
    raw = read_candle_file(BTC_FILE)
    return clean_candles(raw.frame, timeframe="1h", cfg=QualitySettings()).frame
