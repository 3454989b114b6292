"""Central type aliases shared by every layer."""

from __future__ import annotations

from typing import Literal, NewType

Timeframe = Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d"]
SUPPORTED_TIMEFRAMES: tuple[Timeframe, ...] = ("1m", "5m", "15m", "30m", "1h", "4h", "1d")

Signal = Literal[-1, 0, 1]
"""-1 = short, 0 = flat, 1 = long."""

Direction = Literal["UP", "DOWN"]

ModelId = NewType("ModelId", str)

ModelName = Literal["logreg", "random_forest", "xgboost", "lightgbm", "mlp"]
MODEL_NAMES: tuple[ModelName, ...] = ("logreg", "random_forest", "xgboost", "lightgbm", "mlp")
