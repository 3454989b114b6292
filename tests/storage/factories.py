"""Builders for storage tests (and bot/api tests that need logged predictions)."""

from __future__ import annotations

from typing import Any

from storage.records import NewPrediction

HOUR_MS = 3_600_000
T0_MS = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS


def make_new_prediction(index: int = 0, **overrides: Any) -> NewPrediction:
    """A valid 1h BTC/USDT prediction for candle number `index` after T0; override any field."""
    open_ms = overrides.pop("candle_open_ms", T0_MS + index * HOUR_MS)
    proba_up = overrides.pop("proba_up", 0.6)
    values: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "candle_open_ms": open_ms,
        "target_close_ms": open_ms + 2 * HOUR_MS,
        "horizon_bars": 1,
        "proba_up": proba_up,
        "direction": "UP" if proba_up >= 0.5 else "DOWN",
        "signal": 1 if proba_up >= 0.55 else 0,
        "threshold": 0.55,
        "model_id": "BTC_USDT-1h-lightgbm-20231101T0000Z",
        "created_ms": open_ms + HOUR_MS + 5_000,
        "latency_ms": 12.5,
        "is_backfill": False,
    }
    values.update(overrides)
    return NewPrediction(**values)
