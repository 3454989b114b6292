"""Fixtures for the exchange and cache tests: an in-process Binance emulator and ccxt sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

from core.settings import ExchangeSettings, RetrySettings
from data.exchange import CcxtCandleSource
from tests.emulator import BinanceEmulator, running_emulator
from tests.factories import make_ohlcv

N_CLOSED = 2500
TIMEOUT_MS = 250
SLOW_SECONDS = 0.6  # longer than TIMEOUT_MS: the client times out


@pytest.fixture
def source_candles() -> pd.DataFrame:
    """2,500 closed hourly candles plus the one the emulator serves as forming."""
    return make_ohlcv(N_CLOSED + 1)


@pytest.fixture
def emulator(source_candles: pd.DataFrame) -> Iterator[BinanceEmulator]:
    with running_emulator(source_candles, slow_seconds=SLOW_SECONDS) as emu:
        yield emu


@pytest.fixture
def sleeps() -> list[float]:
    """What the source asked to sleep (tests never sleep for real)."""
    return []


@pytest.fixture
def make_source(sleeps: list[float]) -> Callable[..., CcxtCandleSource]:
    """Build a real ccxt source pointed at an emulator: make_source(emu, max_attempts=4, ...)."""

    def build(emu: BinanceEmulator, **overrides: Any) -> CcxtCandleSource:
        retry = RetrySettings(
            max_attempts=overrides.pop("max_attempts", 4),
            backoff_seconds=0.5,
            max_backoff_seconds=overrides.pop("max_backoff_seconds", 5.0),
        )
        cfg = ExchangeSettings(
            base_url=emu.base_url, timeout_ms=TIMEOUT_MS, retry=retry, **overrides
        )
        return CcxtCandleSource(cfg, sleep=sleeps.append)

    return build
