"""Fixtures for strategy tests: the real BTC 1h candles (cleaned by data.quality)."""

from __future__ import annotations

import pandas as pd
import pytest

from core.settings import QualitySettings
from data.files import read_candle_file
from data.quality import clean_candles
from tests.prerequisites import require_shared_file


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    """The cleaned shared BTC/USDT 1h candles (about 33k rows), loaded once per session."""
    raw = read_candle_file(require_shared_file("Binance_BTCUSDT_1h.csv"))
    return clean_candles(raw.frame, timeframe="1h", cfg=QualitySettings()).frame
