"""The trades table shared by the backtrader runner, its numpy twin and the metrics."""

from __future__ import annotations

import pandas as pd

TRADE_COLUMNS: tuple[str, ...] = (
    "entry_time",
    "exit_time",
    "side",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "pnl_net",
    "fees",
    "bars_held",
    "is_open",
    "exit_reason",
)
"""Columns of a trades table, one row per round trip."""


def empty_trades(index: pd.Index) -> pd.DataFrame:
    """A trades table with no rows but the right columns and dtypes."""
    times = pd.Series([], dtype=index.dtype)
    return pd.DataFrame(
        {
            "entry_time": times,
            "exit_time": times,
            "side": pd.Series([], dtype="int64"),
            "size": pd.Series([], dtype="float64"),
            "entry_price": pd.Series([], dtype="float64"),
            "exit_price": pd.Series([], dtype="float64"),
            "pnl": pd.Series([], dtype="float64"),
            "pnl_net": pd.Series([], dtype="float64"),
            "fees": pd.Series([], dtype="float64"),
            "bars_held": pd.Series([], dtype="int64"),
            "is_open": pd.Series([], dtype="bool"),
            "exit_reason": pd.array([], dtype="str"),
        }
    )
