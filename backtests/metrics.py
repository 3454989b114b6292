"""Pure trading metrics from (trades, equity, candles), for a run, buy-and-hold and each fold."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.errors import DataValidationError
from core.timeframes import bars_per_year, timeframe_to_timedelta
from strategy.trades import TRADE_COLUMNS

logger = logging.getLogger(__name__)


_YEAR = pd.Timedelta(days=365.25)
_MAX_LOG_GROWTH = 700.0  # exp(709) overflows a float


@dataclass(frozen=True, slots=True)
class TradingMetrics:
    """Headline trading statistics of one period (a whole run, buy-and-hold or one fold).

    Returns are fractions (0.05 = 5 %). `start` is the open of the first candle and `end` the
    close of the last one. `max_drawdown` is <= 0 (-0.25 = a 25 % fall from the peak). Trade
    statistics (`n_trades`, `win_rate`, `profit_factor`, `avg_win`, `avg_loss`, `expectancy`,
    `avg_holding_bars`) use the closed trades entered in the period, `pnl_net` in quote
    currency; they are NaN with no closed trade (undefined), and `profit_factor` is inf when
    no trade lost. `n_open_trades` counts trades still open at the end of the data.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    n_bars: int
    initial_equity: float
    final_equity: float
    total_return: float
    buy_and_hold_return: float
    cagr: float
    volatility_ann: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration_bars: int
    max_drawdown_duration: pd.Timedelta
    n_trades: int
    n_open_trades: int
    win_rate: float
    profit_factor: float
    avg_win: float
    avg_loss: float
    expectancy: float
    avg_holding_bars: float
    exposure: float
    turnover: float
    fees_paid: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: ISO-8601 times, the drawdown duration in seconds, None for NaN/inf.

        >>> metrics = buy_and_hold_metrics(_doctest_candles(), cash=100.0, timeframe="1h")
        >>> d = metrics.to_dict()
        >>> d["start"], round(d["total_return"], 9), d["max_drawdown_duration"], d["win_rate"]
        ('2024-01-01T00:00:00+00:00', 0.2, 0.0, None)
        """
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, pd.Timestamp):
                out[key] = value.isoformat()
            elif isinstance(value, pd.Timedelta):
                out[key] = value.total_seconds()
            elif isinstance(value, float) and not math.isfinite(value):
                out[key] = None
            elif isinstance(value, np.generic):
                out[key] = value.item()
            else:
                out[key] = value
        return out


def trading_metrics(
    trades: pd.DataFrame,
    equity: pd.Series,
    candles: pd.DataFrame,
    *,
    timeframe: str,
    fees_paid: float | None = None,
    initial_equity: float | None = None,
) -> TradingMetrics:
    """Compute `TradingMetrics` for one period.

    Args:
        trades: the run's trades table (`TRADE_COLUMNS`); trades entered outside the period are
            ignored by the trade statistics but still count for exposure.
        equity: value after each candle close, indexed like `candles`.
        candles: the period's candles (for buy-and-hold and the calendar span).
        timeframe: candle timeframe; sets the annualisation (`core.timeframes.bars_per_year`).
        fees_paid: fees of the period; default: the `fees` of the trades entered in it.
        initial_equity: equity before the first candle; default `equity.iloc[0]`, which is
            right for `StrategyRun.equity` (nothing can fill before the second candle's open).
            Pass the cash for curves that move on the first candle (buy-and-hold).

    Raises:
        DataValidationError: empty or misaligned inputs, or missing trade columns.
    """
    _check_inputs(trades, equity, candles)
    values = equity.to_numpy(dtype="float64")
    initial = float(values[0] if initial_equity is None else initial_equity)
    returns = _bar_returns(values, initial)
    start, end = candles.index[0], candles.index[-1] + timeframe_to_timedelta(timeframe)
    annual_bars = bars_per_year(timeframe)
    drawdown, dd_bars, dd_time = _max_drawdown(values, initial, candles.index, timeframe)
    cagr = _cagr(initial, float(values[-1]), end - start)
    entered = trades["entry_time"]
    period = trades[(entered >= candles.index[0]) & (entered <= candles.index[-1])]
    stats = closed_trade_stats(period)
    fees = float(period["fees"].sum()) if fees_paid is None else float(fees_paid)
    return TradingMetrics(
        start=start,
        end=end,
        n_bars=len(values),
        initial_equity=initial,
        final_equity=float(values[-1]),
        total_return=float(values[-1] / initial - 1.0),
        buy_and_hold_return=float(candles["close"].iloc[-1] / candles["open"].iloc[0] - 1.0),
        cagr=cagr,
        # Annualised volatility: sample std (ddof=1) of per-bar simple returns x sqrt(bars/year),
        # the square-root-of-time rule for i.i.d. returns; crypto trades 365 days a year.
        volatility_ann=_std(returns) * math.sqrt(annual_bars),
        # Sharpe (1994) with a zero risk-free rate, on per-bar returns annualised by
        # sqrt(bars/year) (Lo 2002, "The Statistics of Sharpe Ratios", i.i.d. case); flat
        # equity (zero volatility, zero mean) gives 0 rather than 0/0.
        sharpe=_ratio(float(returns.mean()), _std(returns)) * math.sqrt(annual_bars),
        # Sortino & Price (1994): mean return over the downside deviation with target 0,
        # sqrt(mean(min(r, 0)^2)) taken over ALL bars (not only the losing ones).
        sortino=_ratio(float(returns.mean()), _downside_deviation(returns))
        * math.sqrt(annual_bars),
        # Calmar (Young 1991) over the whole period instead of 36 months: CAGR / |max drawdown|.
        calmar=_ratio(cagr, abs(drawdown)),
        max_drawdown=drawdown,
        max_drawdown_duration_bars=dd_bars,
        max_drawdown_duration=dd_time,
        **stats,
        exposure=_exposure(trades, candles.index),
        turnover=_turnover(period, values),
        fees_paid=fees,
    )


def buy_and_hold_equity(candles: pd.DataFrame, *, cash: float) -> pd.Series:
    """Equity of buying `cash / open[0]` units at the first open (no fee) and holding them.

    >>> buy_and_hold_equity(_doctest_candles(), cash=100.0).tolist()
    [110.0, 120.0]
    """
    if candles.empty:
        raise DataValidationError("buy-and-hold needs at least one candle")
    units = cash / float(candles["open"].iloc[0])
    return (candles["close"].astype("float64") * units).rename("equity")


def buy_and_hold_metrics(candles: pd.DataFrame, *, cash: float, timeframe: str) -> TradingMetrics:
    """`TradingMetrics` of buy-and-hold over `candles` (one open trade, always exposed)."""
    equity = buy_and_hold_equity(candles, cash=cash)
    entry_price = float(candles["open"].iloc[0])
    last_close = float(candles["close"].iloc[-1])
    size = cash / entry_price
    trade = {
        "entry_time": [candles.index[0]],
        "exit_time": pd.Series([pd.NaT], dtype=candles.index.dtype),
        "side": [1],
        "size": [size],
        "entry_price": [entry_price],
        "exit_price": [last_close],
        "pnl": [size * (last_close - entry_price)],
        "pnl_net": [size * (last_close - entry_price)],
        "fees": [0.0],
        "bars_held": [len(candles)],
        "is_open": [True],
        "exit_reason": ["end"],
    }
    return trading_metrics(
        pd.DataFrame(trade), equity, candles, timeframe=timeframe, initial_equity=cash
    )


def segment_metrics(
    trades: pd.DataFrame,
    equity: pd.Series,
    candles: pd.DataFrame,
    *,
    timeframe: str,
    boundaries: Sequence[tuple[pd.Timestamp, pd.Timestamp]],
    initial_equity: float | None = None,
) -> list[TradingMetrics]:
    """`TradingMetrics` per walk-forward fold; `boundaries` are inclusive candle open times.

    Each fold's returns are relative to the equity at its start (the value after the candle
    before its first one, or `initial_equity` for a fold starting at the first candle).
    Trades are assigned to the fold in which they were entered.

    Raises:
        DataValidationError: a fold contains no candle, or inputs are misaligned.
    """
    _check_inputs(trades, equity, candles)
    out = []
    for first, last in boundaries:
        start = int(candles.index.searchsorted(first, side="left"))
        stop = int(candles.index.searchsorted(last, side="right"))
        if stop <= start:
            raise DataValidationError(
                f"fold {first} .. {last} contains no candle of the backtest "
                f"({candles.index[0]} .. {candles.index[-1]})"
            )
        before = equity.iloc[start - 1] if start > 0 else initial_equity
        out.append(
            trading_metrics(
                trades,
                equity.iloc[start:stop],
                candles.iloc[start:stop],
                timeframe=timeframe,
                initial_equity=None if before is None else float(before),
            )
        )
    return out


def _check_inputs(trades: pd.DataFrame, equity: pd.Series, candles: pd.DataFrame) -> None:
    if equity.empty:
        raise DataValidationError("metrics need a non-empty equity curve")
    if len(equity) != len(candles) or not equity.index.equals(candles.index):
        raise DataValidationError(
            f"equity ({len(equity)} rows) and candles ({len(candles)} rows) must share one index "
            "(candle open times)"
        )
    missing = [col for col in TRADE_COLUMNS if col not in trades.columns]
    if missing:
        raise DataValidationError(f"trades table lacks columns {missing}; expected {TRADE_COLUMNS}")


def _bar_returns(values: npt.NDArray[np.float64], initial: float) -> npt.NDArray[np.float64]:
    """Simple return of each candle, the first one against the initial equity."""
    previous = np.concatenate([[initial], values[:-1]])
    out = np.zeros_like(values)
    np.divide(values, previous, out=out, where=previous > 0)
    return np.where(previous > 0, out - 1.0, 0.0)


def _std(returns: npt.NDArray[np.float64]) -> float:
    return float(returns.std(ddof=1)) if len(returns) > 1 else 0.0


def _downside_deviation(returns: npt.NDArray[np.float64]) -> float:
    return float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, with x/0 = +-inf and 0/0 = 0 (no return, no risk).

    >>> _ratio(1.0, 2.0), _ratio(0.0, 0.0), _ratio(-1.0, 0.0)
    (0.5, 0.0, -inf)
    """
    if denominator > 0:
        return numerator / denominator
    if numerator == 0:
        return 0.0
    return math.copysign(math.inf, numerator)


def _cagr(initial: float, final: float, span: pd.Timedelta) -> float:
    """Compound annual growth over calendar time (years of 365.25 days), not bar counts.

    Very short periods can annualise to overflow; that is reported as inf, not an error.

    >>> round(_cagr(100.0, 121.0, pd.Timedelta(days=730.5)), 6)
    0.1
    """
    if final <= 0:
        return -1.0
    log_growth = math.log(final / initial) / (span / _YEAR)
    return math.expm1(log_growth) if log_growth < _MAX_LOG_GROWTH else math.inf


def _max_drawdown(
    values: npt.NDArray[np.float64], initial: float, index: pd.Index, timeframe: str
) -> tuple[float, int, pd.Timedelta]:
    """Deepest fall from a running peak, and the longest peak-to-recovery span.

    The span runs from the peak to the first value back at or above it (or to the last candle
    if never recovered), like backtesting.py's "Max. Drawdown Duration"; times are candle
    closes, the initial equity sitting at the first open.
    """
    curve = np.concatenate([[initial], values])
    peaks = np.maximum.accumulate(curve)
    drawdown = float(np.min(curve / peaks - 1.0))
    underwater = np.diff((curve < peaks).astype("int8"))
    starts = np.flatnonzero(underwater == 1)  # position of the peak before each dive
    ends = np.flatnonzero(underwater == -1) + 1  # first position back at the peak
    if len(ends) < len(starts):
        ends = np.append(ends, len(curve) - 1)
    if len(starts) == 0:
        return drawdown, 0, pd.Timedelta(0)
    longest = int(np.argmax(ends - starts))
    opens = pd.DatetimeIndex(index)
    times = opens[:1].append(opens + pd.Timedelta(timeframe_to_timedelta(timeframe)))  # closes
    span = times[ends[longest]] - times[starts[longest]]
    return drawdown, int(ends[longest] - starts[longest]), pd.Timedelta(span)


def closed_trade_stats(trades: pd.DataFrame) -> dict[str, Any]:
    """Win rate, profit factor, expectancy and holding time of the closed trades (see
    `TradingMetrics`); `n_open_trades` counts the rest."""
    closed = trades[~trades["is_open"].astype(bool)]
    pnl = closed["pnl_net"].to_numpy(dtype="float64")
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    n = len(pnl)
    nan = math.nan
    return {
        "n_trades": n,
        "n_open_trades": len(trades) - n,
        "win_rate": len(wins) / n if n else nan,
        # Gross profit / gross loss (backtesting.py's "Profit Factor"): inf with no losing trade.
        "profit_factor": _ratio(float(wins.sum()), float(-losses.sum())) if n else nan,
        "avg_win": float(wins.mean()) if len(wins) else nan,
        "avg_loss": float(losses.mean()) if len(losses) else nan,
        # Expectancy = win_rate * avg_win + loss_rate * avg_loss = mean net P&L per trade.
        "expectancy": float(pnl.mean()) if n else nan,
        "avg_holding_bars": float(closed["bars_held"].mean()) if n else nan,
    }


def _exposure(trades: pd.DataFrame, index: pd.Index) -> float:
    """Fraction of candles closed with a position on (trades clipped to the period)."""
    if trades.empty:
        return 0.0
    entries = index.searchsorted(pd.DatetimeIndex(trades["entry_time"]), side="left")
    exit_times = pd.DatetimeIndex(trades["exit_time"])
    exits = index.searchsorted(exit_times, side="left")
    exits = np.where(exit_times.isna(), len(index), exits)
    steps = np.zeros(len(index) + 1, dtype="int64")
    np.add.at(steps, entries, 1)
    np.add.at(steps, exits, -1)
    return float(np.mean(np.cumsum(steps[:-1]) > 0))


def _turnover(trades: pd.DataFrame, values: npt.NDArray[np.float64]) -> float:
    """Traded value (entries plus exits of the period's trades) / mean equity: capital turns."""
    closed = ~trades["is_open"].astype(bool).to_numpy()
    size = trades["size"].to_numpy(dtype="float64")
    traded = size * trades["entry_price"].to_numpy(dtype="float64")
    traded = traded + np.where(closed, size * trades["exit_price"].to_numpy(dtype="float64"), 0.0)
    mean_equity = float(np.mean(values))
    return float(traded.sum() / mean_equity) if mean_equity > 0 else 0.0


def _doctest_candles() -> pd.DataFrame:
    index = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00"], tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": [10.0, 11.0], "high": [11.5, 12.5], "low": [9.5, 10.5], "close": [11.0, 12.0]},
        index=index,
    )
