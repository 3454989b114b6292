"""Trade statistics and the trade list of one traded path (pure: from the trades table)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from backtests.metrics import closed_trade_stats
from core.timeframes import timeframe_to_timedelta

EXIT_REASONS = {
    "signal": "signal exit",
    "stop_loss": "stop-loss",
    "take_profit": "take-profit",
    "end": "open at end of data",
}
"""Words for the `exit_reason` the strategy records (`strategy.ml_signal.ExitReason`)."""


@dataclass(frozen=True, slots=True)
class TradeStatistics:
    """Statistics of the closed trades of a path (open trades are only counted).

    P&L is in quote currency, net of fees unless the name says gross; `*_return` are fractions
    of the trade's entry value. Undefined values (no closed trade) are NaN; `profit_factor` is
    inf when no trade lost.
    """

    n_trades: int
    n_open_trades: int
    n_winners: int
    n_losers: int
    win_rate: float
    profit_factor: float
    expectancy: float
    expectancy_return: float
    best: float
    worst: float
    best_return: float
    worst_return: float
    gross_pnl: float
    net_pnl: float
    fees: float
    avg_holding_bars: float
    median_holding_bars: float
    avg_holding_seconds: float
    median_holding_seconds: float
    longest_losing_streak: int

    def to_dict(self) -> dict[str, Any]:
        """Plain values (NaN and inf stay floats; `json_ready` turns them into null)."""
        return asdict(self)


def longest_losing_streak(pnl: npt.ArrayLike) -> int:
    """The most consecutive losing trades (P&L < 0), in trade order.

    >>> longest_losing_streak([1.0, -1.0, -2.0, 0.0, -1.0, -1.0, -1.0, 3.0])
    3
    >>> longest_losing_streak([])
    0
    """
    longest = current = 0
    for value in np.asarray(pnl, dtype="float64"):
        current = current + 1 if value < 0 else 0
        longest = max(longest, current)
    return longest


def trade_returns(trades: pd.DataFrame) -> pd.Series:
    """Net P&L of each trade as a fraction of its entry value (size x entry price)."""
    value = trades["size"].astype("float64") * trades["entry_price"].astype("float64")
    return trades["pnl_net"].astype("float64") / value.where(value > 0)


def _extreme(values: npt.NDArray[np.float64], pick: Any) -> float:
    return float(pick(values)) if len(values) else math.nan


def _median(values: npt.NDArray[np.float64]) -> float:
    return float(np.median(values)) if len(values) else math.nan


def trade_statistics(trades: pd.DataFrame, *, timeframe: str) -> TradeStatistics:
    """Win rate, profit factor, expectancy, best/worst, holding time and the longest losing
    streak of the closed trades in `trades` (a `strategy.trades.TRADE_COLUMNS` table)."""
    closed = trades[~trades["is_open"].astype(bool)].sort_values("entry_time", kind="stable")
    base = closed_trade_stats(trades)
    pnl = closed["pnl_net"].to_numpy(dtype="float64")
    returns = trade_returns(closed).to_numpy(dtype="float64")
    bars = closed["bars_held"].to_numpy(dtype="float64")
    bar_seconds = timeframe_to_timedelta(timeframe).total_seconds()
    return TradeStatistics(
        n_trades=base["n_trades"],
        n_open_trades=base["n_open_trades"],
        n_winners=int((pnl > 0).sum()),
        n_losers=int((pnl < 0).sum()),
        win_rate=base["win_rate"],
        profit_factor=base["profit_factor"],
        expectancy=base["expectancy"],
        expectancy_return=float(np.nanmean(returns)) if len(returns) else math.nan,
        best=_extreme(pnl, np.max),
        worst=_extreme(pnl, np.min),
        best_return=_extreme(returns, np.nanmax),
        worst_return=_extreme(returns, np.nanmin),
        gross_pnl=float(closed["pnl"].sum()),
        net_pnl=float(pnl.sum()),
        fees=float(closed["fees"].sum()),
        avg_holding_bars=base["avg_holding_bars"],
        median_holding_bars=_median(bars),
        avg_holding_seconds=base["avg_holding_bars"] * bar_seconds,
        median_holding_seconds=_median(bars) * bar_seconds,
        longest_losing_streak=longest_losing_streak(pnl),
    )


def _iso_times(values: pd.Series) -> list[str | None]:
    times = pd.DatetimeIndex(values)
    return [None if pd.isna(time) else time.isoformat() for time in times]


def trade_records(trades: pd.DataFrame) -> list[dict[str, Any]]:
    """One plain dict per trade, in entry order (the JSON `trades.rows` and the HTML list).

    Open trades have `exit_time` None and are marked to market at the last close.
    """
    ordered = trades.sort_values("entry_time", kind="stable").reset_index(drop=True)
    columns: dict[str, list[Any]] = {
        "entry_time": _iso_times(ordered["entry_time"]),
        "exit_time": _iso_times(ordered["exit_time"]),
        "side": ["long" if side > 0 else "short" for side in ordered["side"].tolist()],
        "bars_held": [int(bars) for bars in ordered["bars_held"].tolist()],
        "return": trade_returns(ordered).astype("float64").tolist(),
        "exit_reason": [str(reason) for reason in ordered["exit_reason"].tolist()],
        "is_open": [bool(flag) for flag in ordered["is_open"].tolist()],
    }
    for name in ("size", "entry_price", "exit_price", "pnl", "fees", "pnl_net"):
        columns[name] = ordered[name].astype("float64").tolist()
    return [
        {"number": i + 1, **{name: values[i] for name, values in columns.items()}}
        for i in range(len(ordered))
    ]


def rows_to_show(rows: list[dict[str, Any]], *, limit: int, extremes: int) -> list[dict[str, Any]]:
    """At most `limit` first rows plus the `extremes` best and worst (by net P&L) of the rest.

    >>> rows = [{"number": i, "pnl_net": float(p)} for i, p in enumerate([5, -9, 1, 7, -3])]
    >>> [r["number"] for r in rows_to_show(rows, limit=2, extremes=1)]
    [0, 1, 3, 4]
    """
    if len(rows) <= limit:
        return list(rows)
    rest = sorted(rows[limit:], key=lambda row: row["pnl_net"])
    picked = {row["number"]: row for row in (*rest[:extremes], *rest[-extremes:])}
    return rows[:limit] + sorted(picked.values(), key=lambda row: row["number"])
