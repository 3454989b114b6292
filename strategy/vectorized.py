"""`simulate_signals`: a numpy twin of the backtrader fill rules (engine check, fee sweeps)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.errors import ConfigError, DataValidationError
from strategy.costs import BPS

logger = logging.getLogger(__name__)

FillTiming = Literal["next_open", "close", "open"]
"""When a target decided at the close of candle t trades: "next_open" = the open of t+1 (what
backtrader and the live bot do); "close" = the close of t (backtrader's cheat-on-close);
"open" = the open of t itself, a look-ahead cheat kept only to show what it would be worth."""
_SIGNALS = (-1, 0, 1)


@dataclass(frozen=True, slots=True)
class VectorRun:
    """Result of `simulate_signals` (same meaning as `StrategyRun` where the names match).

    Attributes:
        equity: cash + units * close after each candle.
        position: signed units held after each candle.
        fills: one row per filled order: `time` (candle whose price filled it), `size`
            (signed units), `price`, `fee`, `role` ("entry" or "exit").
        trades: round trips with the columns and meaning of `StrategyRun.trades`
            (`exit_reason` is "signal", or "end" for a trade still open).
        n_trades: filled entries (round trips started).
        orders: filled orders; `orders_rejected`: refused for lack of cash.
        fees_paid: sum of fees; `traded_value`: sum of |size| * price over fills.
    """

    equity: pd.Series
    position: pd.Series
    fills: pd.DataFrame
    trades: pd.DataFrame
    n_trades: int
    orders: int
    orders_rejected: int
    fees_paid: float
    traded_value: float

    @property
    def final_equity(self) -> float:
        """Equity after the last candle."""
        return float(self.equity.iloc[-1])


@dataclass(slots=True)
class _Book:
    """Mutable account state while simulating."""

    cash: float
    units: float = 0.0
    rejected: int = 0


def simulate_signals(
    frame: pd.DataFrame,
    positions: npt.ArrayLike,
    *,
    sizes: npt.ArrayLike | None = None,
    cash: float,
    fee_rate: float,
    slippage_bps: float,
    position_fraction: float,
    fill: FillTiming = "next_open",
) -> VectorRun:
    """Re-compute a backtest from target positions with the fill rules of `MLSignalStrategy`.

    `positions[t]` (-1, 0, 1) is the target decided at the close of candle t and `sizes[t]`
    the traded fraction of `position_fraction` (default 1), e.g. from
    `ml.decision.positions_from_proba`. A change of side is traded at the open of t+1 (see
    `FillTiming` for the alternatives used by tests): close the held units, then open
    `size * position_fraction * equity / close` units, both taken at the last close before
    the fill. Prices
    slip by `slippage_bps` against the trader, capped at the candle's high/low; fees are
    `fee_rate` of traded value per side. Like backtrader (as `configure_broker` sets it up), an
    entry is refused when the cash left after it at the fill price, fees included, would be
    negative. Stop-loss/take-profit orders are NOT simulated here: compare it only with
    runs that have them off. Only the candles where the target changes are visited in Python;
    equity between them is filled with numpy.

    Raises:
        DataValidationError: `positions` has the wrong length or values other than -1/0/1.
        ConfigError: non-positive cash or a position fraction outside (0, 1].
    """
    target = _checked_positions(frame, positions)
    scale = np.ones(len(target)) if sizes is None else np.asarray(sizes, dtype="float64")
    if scale.shape != target.shape or not ((scale >= 0) & (scale <= 1)).all():
        raise DataValidationError(
            f"sizes must be one value in [0, 1] per candle (got shape {scale.shape})"
        )
    if cash <= 0 or not 0 < position_fraction <= 1:
        raise ConfigError(
            f"need cash > 0 and 0 < position_fraction <= 1, got {cash} and {position_fraction}"
        )
    prices = {col: frame[col].to_numpy(dtype="float64") for col in ("open", "high", "low", "close")}
    close = prices["close"]
    n = len(target)
    equity = np.empty(n)
    units = np.empty(n)
    book = _Book(cash=float(cash))
    fills: list[tuple[int, float, float, float, str]] = []
    changes = {s: np.flatnonzero(target != s) for s in _SIGNALS}
    last_decision = n - 2 if fill == "next_open" else n - 1
    filled_to = 0
    search_from = 1 if fill == "open" else 0  # the open of the first candle has no prior close
    while True:
        held = int(np.sign(book.units))
        candidates = changes[held]
        at = int(np.searchsorted(candidates, search_from))
        if at >= len(candidates) or candidates[at] > last_decision:
            break
        t = int(candidates[at])
        bar = t + 1 if fill == "next_open" else t
        reference = close[t - 1] if fill == "open" else close[t]
        equity[filled_to:bar] = book.cash + book.units * close[filled_to:bar]
        units[filled_to:bar] = book.units
        orders = _orders(book, held, int(target[t]), position_fraction * scale[t], reference)
        _fill_orders(
            book,
            orders,
            bar=bar,
            fill=fill,
            prices=prices,
            fee_rate=fee_rate,
            slip=slippage_bps * BPS,
            fills=fills,
        )
        filled_to, search_from = bar, t + 1
    equity[filled_to:] = book.cash + book.units * close[filled_to:]
    units[filled_to:] = book.units
    return _result(frame.index, close, equity, units, fills, book.rejected)


def _checked_positions(frame: pd.DataFrame, positions: npt.ArrayLike) -> npt.NDArray[np.int64]:
    values = np.asarray(positions, dtype="float64")
    if values.shape != (len(frame),):
        raise DataValidationError(
            f"positions must be one value per candle: got shape {values.shape} "
            f"for {len(frame)} candles"
        )
    bad = np.flatnonzero(~np.isin(values, _SIGNALS))
    if len(bad):
        raise DataValidationError(
            f"positions must be -1, 0 or 1; got {values[bad[0]]!r} at {frame.index[bad[0]]} "
            "(turn probabilities into targets with ml.decision.positions_from_proba)"
        )
    return values.astype("int64")


def _orders(
    book: _Book, held: int, target: int, fraction: float, close: float
) -> list[tuple[str, float]]:
    """Signed order sizes for a change of target: close what is held, then open the new side."""
    orders: list[tuple[str, float]] = []
    value = book.cash + book.units * close
    if held != 0:
        orders.append(("exit", -book.units))
    if target != 0:
        size = fraction * value / close
        if size > 0:
            orders.append(("entry", target * size))
    return orders


def _fill_orders(
    book: _Book,
    orders: list[tuple[str, float]],
    *,
    bar: int,
    fill: FillTiming,
    prices: dict[str, npt.NDArray[np.float64]],
    fee_rate: float,
    slip: float,
    fills: list[tuple[int, float, float, float, str]],
) -> None:
    base = prices["close" if fill == "close" else "open"][bar]
    for role, size in orders:
        if size > 0:  # buys slip up, capped at the candle's high
            price = min(base * (1 + slip), prices["high"][bar]) if slip else base
        else:  # sells slip down, capped at the candle's low
            price = max(base * (1 - slip), prices["low"][bar]) if slip else base
        fee = abs(size) * fee_rate * price
        cash_after = book.cash - size * price - fee
        if role == "entry" and cash_after < 0:  # backtrader nullifies an unaffordable opening
            book.rejected += 1
            continue
        book.cash = cash_after
        book.units = 0.0 if role == "exit" else book.units + size
        fills.append((bar, size, price, fee, role))


def _result(
    index: pd.Index,
    closes: npt.NDArray[np.float64],
    equity: npt.NDArray[np.float64],
    units: npt.NDArray[np.float64],
    fills: list[tuple[int, float, float, float, str]],
    rejected: int,
) -> VectorRun:
    bars = np.array([f[0] for f in fills], dtype="int64")
    sizes = np.array([f[1] for f in fills], dtype="float64")
    fill_prices = np.array([f[2] for f in fills], dtype="float64")
    fees = np.array([f[3] for f in fills], dtype="float64")
    roles = [f[4] for f in fills]
    fills_frame = pd.DataFrame(
        {"time": index[bars], "size": sizes, "price": fill_prices, "fee": fees, "role": roles}
    )
    return VectorRun(
        equity=pd.Series(equity, index=index, name="equity"),
        position=pd.Series(units, index=index, name="position"),
        fills=fills_frame,
        trades=_trades_from_fills(fills_frame, bars, index=index, last_close=float(closes[-1])),
        n_trades=sum(role == "entry" for role in roles),
        orders=len(fills),
        orders_rejected=rejected,
        fees_paid=float(fees.sum()),
        traded_value=float(np.abs(sizes * fill_prices).sum()),
    )


def _trades_from_fills(
    fills: pd.DataFrame, bars: npt.NDArray[np.int64], *, index: pd.Index, last_close: float
) -> pd.DataFrame:
    """Pair each entry with the exit that follows it (an open trade is marked to the last close)."""
    roles = fills["role"].to_numpy(dtype=object)
    sizes, prices, fees = (fills[col].to_numpy(dtype="float64") for col in ("size", "price", "fee"))
    entries = np.flatnonzero(roles == "entry")
    following = np.minimum(entries + 1, max(len(roles) - 1, 0))
    closed = (
        (entries + 1 < len(roles)) & (roles[following] == "exit") if len(entries) else entries > 0
    )
    side = np.sign(sizes[entries]).astype("int64")
    size = np.abs(sizes[entries])
    exit_price = np.where(closed, prices[following], last_close)
    pnl = side * size * (exit_price - prices[entries])
    total_fees = fees[entries] + np.where(closed, fees[following], 0.0)
    exit_bar = np.where(closed, bars[following], len(index))
    exit_time = pd.Series(index[np.minimum(exit_bar, len(index) - 1)]).where(closed)
    return pd.DataFrame(
        {
            "entry_time": index[bars[entries]],
            "exit_time": exit_time.array,
            "side": side,
            "size": size,
            "entry_price": prices[entries],
            "exit_price": exit_price,
            "pnl": pnl,
            "pnl_net": pnl - total_fees,
            "fees": total_fees,
            "bars_held": (exit_bar - bars[entries]).astype("int64"),
            "is_open": ~closed,
            "exit_reason": pd.array(["signal" if done else "end" for done in closed], dtype="str"),
        }
    )
