"""`run_strategy`: one backtrader run of `MLSignalStrategy` -> equity, positions and trades."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import backtrader as bt
import numpy as np
import numpy.typing as npt
import pandas as pd

from core.errors import ConfigError
from core.settings import StrategySettings
from strategy.costs import configure_broker
from strategy.feeds import ATR_COLUMN, SIDE_COLUMN, SIZE_COLUMN, make_prediction_feed
from strategy.ml_signal import MLSignalStrategy, TradeRecord, check_exit_rules
from strategy.trades import empty_trades

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StrategyRun:
    """What one backtest run produced, indexed by candle open time.

    Attributes:
        equity: broker value (cash + position at the close) after each candle.
        position: signed units held after each candle (negative = short).
        trades: one row per round trip (columns `TRADE_COLUMNS`): times are the candles whose
            open filled the entry/exit (`exit_time` NaT while open); `pnl` is gross, `pnl_net`
            after both fees; an open trade is marked to the last close (`exit_price`, `pnl`)
            with `exit_reason` "end"; `bars_held` counts candle closes with the position on.
        fees_paid: all commissions paid (open trades' entry fees included).
        orders: filled orders; `orders_rejected` were refused for lack of cash.
        candles_per_second: backtrader throughput of this run (engine time only).
    """

    equity: pd.Series
    position: pd.Series
    trades: pd.DataFrame
    fees_paid: float
    orders: int
    orders_rejected: int
    candles_per_second: float


def run_strategy(
    frame: pd.DataFrame,
    *,
    timeframe: str,
    side: npt.ArrayLike,
    size: npt.ArrayLike | None = None,
    strategy: StrategySettings,
) -> StrategyRun:
    """Backtest `MLSignalStrategy` on candles with the policy's target positions.

    `side[t]` (-1/0/1) and `size[t]` (fraction of `position_fraction`, default 1) are the
    targets decided at the close of candle t, e.g. from `ml.decision.positions_from_proba`.

    Raises:
        DataValidationError: the frame breaks the candle schema or a target is invalid.
        ConfigError: an ATR exit rule without an `atr` column, or an impossible exit rule.
    """
    uses_atr = "atr" in (strategy.stop_loss.kind, strategy.take_profit.kind)
    if uses_atr and ATR_COLUMN not in frame.columns:
        raise ConfigError(
            "strategy.stop_loss/take_profit kind 'atr' needs an 'atr' column in the backtest "
            "frame; add one with strategy.feeds.add_atr(candles, window=...)"
        )
    check_exit_rules(strategy.stop_loss, strategy.take_profit)
    targets = frame.assign(
        **{
            SIDE_COLUMN: np.asarray(side, dtype="float64"),
            SIZE_COLUMN: np.ones(len(frame)) if size is None else np.asarray(size, "float64"),
        }
    )
    feed = make_prediction_feed(targets, timeframe=timeframe)
    cerebro = bt.Cerebro(stdstats=False)  # observers cost ~15 %; equity is recorded in next()
    cerebro.adddata(feed)
    configure_broker(cerebro, strategy)
    cerebro.addstrategy(
        MLSignalStrategy,
        position_fraction=strategy.position_fraction,
        stop_loss=strategy.stop_loss,
        take_profit=strategy.take_profit,
    )
    started = time.perf_counter()
    result: MLSignalStrategy = cerebro.run()[0]
    elapsed = time.perf_counter() - started
    return _collect(result, frame, elapsed)


def _collect(result: MLSignalStrategy, frame: pd.DataFrame, elapsed: float) -> StrategyRun:
    index = frame.index
    if len(result.equity) != len(index):
        raise RuntimeError(
            f"backtrader produced {len(result.equity)} bars for {len(index)} candles; "
            "a strategy with indicators needs warm-up handling"
        )
    equity = pd.Series(result.equity, index=index, name="equity", dtype="float64")
    position = pd.Series(result.units, index=index, name="position", dtype="float64")
    trades = trades_frame(result.trades, index=index, last_close=float(frame["close"].iloc[-1]))
    run = StrategyRun(
        equity=equity,
        position=position,
        trades=trades,
        fees_paid=float(result.fees_paid),
        orders=result.orders_filled,
        orders_rejected=result.orders_rejected,
        candles_per_second=len(index) / elapsed if elapsed > 0 else float("inf"),
    )
    logger.info(
        "Backtest %s -> %s: %d candles, %d trades, %d orders (%d rejected), final equity %.2f, "
        "%.0f candles/s",
        index[0],
        index[-1],
        len(index),
        len(trades),
        run.orders,
        run.orders_rejected,
        equity.iloc[-1],
        run.candles_per_second,
    )
    return run


def trades_frame(records: list[TradeRecord], *, index: pd.Index, last_close: float) -> pd.DataFrame:
    """The trades table of `StrategyRun` from the strategy's records."""
    if not records:
        return empty_trades(index)
    n_bars = len(index)
    exit_bars = [r.exit_bar for r in records]
    is_open = np.array([bar is None for bar in exit_bars])
    side = np.array([r.side for r in records], dtype="int64")
    size = np.array([r.size for r in records], dtype="float64")
    entry_bar = np.array([r.entry_bar for r in records], dtype="int64")
    exit_bar = np.array([n_bars if bar is None else bar for bar in exit_bars], dtype="int64")
    entry_price = np.array([r.entry_price for r in records], dtype="float64")
    exit_price = np.array([r.exit_price for r in records], dtype="float64")
    exit_price[is_open] = last_close  # marked to market at the last close
    fees = np.array([r.entry_fee + r.exit_fee for r in records], dtype="float64")
    pnl = side * size * (exit_price - entry_price)
    exit_time = pd.Series(pd.NaT, index=range(len(records)), dtype=index.dtype)
    exit_time[~is_open] = index[exit_bar[~is_open]]
    return pd.DataFrame(
        {
            "entry_time": index[entry_bar],
            "exit_time": exit_time.array,
            "side": side,
            "size": size,
            "entry_price": entry_price,
            "exit_price": exit_price,
            "pnl": pnl,
            "pnl_net": pnl - fees,
            "fees": fees,
            "bars_held": exit_bar - entry_bar,
            "is_open": is_open,
            "exit_reason": pd.array([r.exit_reason for r in records], dtype="str"),
        }
    )
