"""Paper trading arithmetic: candle by candle, the fill rules of the backtest.

The incremental twin of `strategy.vectorized.simulate_signals` (and so of the backtrader
strategy): the target decided at a candle's close trades at the NEXT candle's open, first
closing what is held, then opening `size * position_fraction * equity / close` units, both
sized at the decision candle's close; prices slip by `slippage_bps` against the trader, capped
at the fill candle's high/low; the fee is `fee_rate` of the traded value; an entry whose cost
and fee exceed the cash is refused (and retried at the next open while the target stands).
The end-to-end bot tests check that the marks equal `simulate_signals` on the same candles.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.settings import StrategySettings
from core.types import Signal
from storage.paper import MarketDecision, OrderRole, PaperMark, PaperOrder

logger = logging.getLogger(__name__)

BPS = 1e-4
"""One basis point as a fraction (`strategy.costs.BPS`)."""


@dataclass(frozen=True, slots=True)
class PaperCosts:
    """Starting cash and trading costs of a paper account (`strategy` settings)."""

    cash: float
    fee_rate: float
    slippage_bps: float
    position_fraction: float

    @classmethod
    def from_settings(cls, strategy: StrategySettings) -> PaperCosts:
        """The costs of the backtest; stop-loss and take-profit are not simulated."""
        return cls(
            cash=strategy.cash,
            fee_rate=strategy.fee_rate,
            slippage_bps=strategy.slippage_bps,
            position_fraction=strategy.position_fraction,
        )


@dataclass(frozen=True, slots=True)
class PaperCandle:
    """One closed candle's prices."""

    open_ms: int
    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True, slots=True)
class Market:
    """Which paper account: (exchange, symbol, timeframe)."""

    exchange: str
    symbol: str
    timeframe: str


def advance_paper(
    previous: PaperMark | None,
    candles: Sequence[PaperCandle],
    decisions: Mapping[int, MarketDecision],
    *,
    market: Market,
    costs: PaperCosts,
) -> tuple[list[PaperMark], list[PaperOrder]]:
    """The marks of `candles` (oldest first, all after `previous`) and the orders they fill.

    `previous` is the account's newest mark (None: the account opens at the first candle with
    `costs.cash` and no position). `decisions` maps a candle's open time to the decision at
    its close; a candle without one keeps the previous target.

    >>> costs = PaperCosts(cash=100.0, fee_rate=0.0, slippage_bps=0.0, position_fraction=0.5)
    >>> bars = [PaperCandle(t, 10.0 + t, 12.0 + t, 9.0 + t, 10.0 + t) for t in range(3)]
    >>> go = {0: MarketDecision(0, 1, 1.0, "m")}
    >>> marks, orders = advance_paper(None, bars, go, market=Market("x", "A/B", "1h"), costs=costs)
    >>> [m.equity for m in marks], [(o.role, o.units, o.price) for o in orders]
    ([100.0, 100.0, 105.0], [('entry', 5.0, 11.0)])
    """
    marks: list[PaperMark] = []
    orders: list[PaperOrder] = []
    for candle in candles:
        if previous is not None and candle.open_ms <= previous.candle_open_ms:
            raise ValueError(
                f"paper candle {candle.open_ms} is not after the newest mark "
                f"{previous.candle_open_ms}"
            )
        previous, filled = next_mark(
            previous, candle, decisions.get(candle.open_ms), market=market, costs=costs
        )
        marks.append(previous)
        orders.extend(filled)
    return marks, orders


def next_mark(
    previous: PaperMark | None,
    candle: PaperCandle,
    decision: MarketDecision | None,
    *,
    market: Market,
    costs: PaperCosts,
) -> tuple[PaperMark, list[PaperOrder]]:
    """One candle: fill the standing target at its open, mark at its close, take its decision."""
    orders: list[PaperOrder] = []
    if previous is None:
        cash, units = costs.cash, 0.0
    else:
        cash, units, orders = _fill(previous, candle, market=market, costs=costs)
    if decision is not None:
        side, size, model_id = decision.signal, _size(decision), decision.model_id
    elif previous is not None:
        side, size, model_id = previous.target_side, previous.target_size, None
    else:
        side, size, model_id = 0, 0.0, None
    mark = PaperMark(
        exchange=market.exchange,
        symbol=market.symbol,
        timeframe=market.timeframe,
        candle_open_ms=candle.open_ms,
        open=candle.open,
        high=candle.high,
        low=candle.low,
        close=candle.close,
        cash=cash,
        units=units,
        equity=cash + units * candle.close,
        target_side=side,
        target_size=size,
        model_id=model_id,
    )
    return mark, orders


def _size(decision: MarketDecision) -> float:
    """The traded fraction of a decision (rows logged before sizes were recorded: 1)."""
    if decision.signal == 0:
        return 0.0
    return 1.0 if decision.size is None else float(decision.size)


def _side_of(units: float) -> Signal:
    return 1 if units > 0 else -1 if units < 0 else 0


def _fill(
    previous: PaperMark, candle: PaperCandle, *, market: Market, costs: PaperCosts
) -> tuple[float, float, list[PaperOrder]]:
    """Trade the target decided at `previous`'s close at `candle`'s open (`simulate_signals`)."""
    held, target = _side_of(previous.units), previous.target_side
    if target == held:
        return previous.cash, previous.units, []
    value = previous.cash + previous.units * previous.close
    wanted: list[tuple[OrderRole, float]] = []
    if held != 0:
        wanted.append(("exit", -previous.units))
    if target != 0:
        fraction = costs.position_fraction * previous.target_size
        units = fraction * value / previous.close
        if units > 0:
            wanted.append(("entry", target * units))
    cash, held_units = previous.cash, previous.units
    slip = costs.slippage_bps * BPS
    orders: list[PaperOrder] = []
    for role, units in wanted:
        price = _slipped(candle, units, slip)
        fee = abs(units) * costs.fee_rate * price
        cash_after = cash - units * price - fee
        refused = role == "entry" and cash_after < 0  # backtrader refuses an unaffordable entry
        if not refused:
            cash = cash_after
            held_units = 0.0 if role == "exit" else held_units + units
        orders.append(
            PaperOrder(
                exchange=market.exchange,
                symbol=market.symbol,
                timeframe=market.timeframe,
                decision_open_ms=previous.candle_open_ms,
                fill_open_ms=candle.open_ms,
                role=role,
                status="rejected" if refused else "filled",
                units=units,
                price=price,
                fee=fee,
                model_id=previous.model_id,
            )
        )
    return cash, held_units, orders


def _slipped(candle: PaperCandle, units: float, slip: float) -> float:
    """The open moved against the trader by `slip`, capped at the candle's high/low."""
    if not slip:
        return candle.open
    if units > 0:
        return min(candle.open * (1 + slip), candle.high)
    return max(candle.open * (1 - slip), candle.low)
