"""Builders for test data: synthetic candles, settings and prediction rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.settings import Settings
from core.timeframes import timeframe_to_ms
from data.schema import epoch_ms_to_index

DEFAULT_START = pd.Timestamp("2021-01-01", tz="UTC")


def make_ohlcv(
    n: int,
    timeframe: str = "1h",
    seed: int = 42,
    start: pd.Timestamp | str = DEFAULT_START,
    *,
    log_returns: np.ndarray | None = None,
    price: float = 30_000.0,
    volatility: float = 0.01,
) -> pd.DataFrame:
    """Deterministic valid candles: each open equals the previous close (a random walk by default).

    Pass `log_returns` (length n) to plant a known return process (e.g. AR(1)).
    """
    rng = np.random.default_rng(seed)
    if log_returns is None:
        log_returns = rng.normal(0.0, volatility, n)
    closes = price * np.exp(np.cumsum(log_returns))
    opens = np.concatenate([[price], closes[:-1]])
    spread = np.abs(rng.normal(0.0, volatility / 2, n)) + volatility / 10
    highs = np.maximum(opens, closes) * np.exp(spread * rng.uniform(0.2, 1.0, n))
    lows = np.minimum(opens, closes) * np.exp(-spread * rng.uniform(0.2, 1.0, n))
    volume = rng.lognormal(mean=3.0, sigma=0.5, size=n)
    start_ms = int(pd.Timestamp(start).timestamp() * 1000)
    index = epoch_ms_to_index(start_ms + np.arange(n, dtype="int64") * timeframe_to_ms(timeframe))
    return pd.DataFrame(
        {"open": opens, "high": highs, "low": lows, "close": closes, "volume": volume},
        index=index,
    )


def make_settings(tmp_path: Path | None = None, **overrides: Any) -> Settings:
    """Settings with every working path under `tmp_path`; `overrides` are nested section dicts.

    >>> make_settings(None, ml={"seed": 7}).ml.seed
    7
    """
    raw: dict[str, Any] = {}
    if tmp_path is not None:
        raw = {
            "data": {"cache_dir": str(tmp_path / "cache")},
            "ml": {"registry_dir": str(tmp_path / "models")},
            "backtest": {"reports_dir": str(tmp_path / "reports")},
            "storage": {"db_url": f"sqlite:///{tmp_path / 'test.db'}"},
        }
    _deep_merge(raw, overrides)
    return Settings.model_validate(raw)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
