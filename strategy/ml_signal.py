"""`MLSignalStrategy`: the decision policy's precomputed target lines -> backtrader orders."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import backtrader as bt

from core.errors import ConfigError
from core.settings import ExitRuleSettings
from core.types import Signal

logger = logging.getLogger(__name__)

ExitReason = Literal["signal", "stop_loss", "take_profit", "end"]
_PERCENT = 0.01


@dataclass(slots=True)
class TradeRecord:
    """One round trip as the strategy sees it; mutable until the exit fills."""

    side: Signal
    size: float
    entry_bar: int
    entry_price: float
    entry_fee: float
    exit_bar: int | None = None
    exit_price: float = math.nan
    exit_fee: float = 0.0
    exit_reason: ExitReason = "end"


def exit_rule_distance(rule: ExitRuleSettings, *, entry_price: float, atr: float) -> float | None:
    """Price distance of a stop-loss/take-profit from the entry, or None when it is off/unknown.

    `percent` rules read `value` in percent of the entry price (2.0 = 2 %); `atr` rules use
    `value` times the ATR known when the entry was decided.

    >>> exit_rule_distance(ExitRuleSettings(kind="percent", value=2.0), entry_price=100.0, atr=5.0)
    2.0
    >>> exit_rule_distance(ExitRuleSettings(kind="atr", value=1.5), entry_price=100.0, atr=4.0)
    6.0
    """
    if rule.kind == "percent":
        return entry_price * rule.value * _PERCENT
    if rule.kind == "atr" and math.isfinite(atr) and atr > 0:
        return rule.value * atr
    return None


def check_exit_rules(stop_loss: ExitRuleSettings, take_profit: ExitRuleSettings) -> None:
    """Refuse a percent stop-loss of 100 % or more (a long stop at a price <= 0 never fires).

    Raises:
        ConfigError: naming the key and the fix.
    """
    if stop_loss.kind == "percent" and stop_loss.value >= 100:
        raise ConfigError(
            f"strategy.stop_loss.value: {stop_loss.value} % would put a long stop at or below 0; "
            "percent rules are in percent of the entry price (2.0 = 2 %)"
        )
    del take_profit  # any positive take-profit is reachable for longs; shorts are capped at 0


class MLSignalStrategy(bt.Strategy):
    """Trade the targets that `ml.decision.positions_from_proba` decided (`target_side/size`).

    At the close of candle t the target is read from the lines (the policy, its hysteresis,
    holding time and cooldown live in `ml.decision`, shared with the bot and the API); market
    orders fill at the open of t+1 (backtrader's default, no cheat-on-open/close). An entry
    buys or sells `target_size * position_fraction * equity / close[t]` units; a reversal
    closes first, then opens. An entry refused for lack of cash is retried while the target
    holds.
    Stop-loss (Stop order) and take-profit (Limit order, one-cancels-other) are placed when
    the entry fills and are live from the next candle on; if both prices lie inside one candle
    the stop is assumed hit first (pessimistic). Nothing here calls a model.
    """

    params: Any = (
        ("position_fraction", 0.95),
        ("stop_loss", ExitRuleSettings()),
        ("take_profit", ExitRuleSettings()),
    )

    def __init__(self) -> None:
        check_exit_rules(self.p.stop_loss, self.p.take_profit)
        if not 0 < self.p.position_fraction < 1:
            raise ConfigError(
                f"position_fraction must be in (0, 1) so fees fit, got {self.p.position_fraction}"
            )
        self._side = self.data.target_side
        self._size = self.data.target_size
        self._atr = self.data.atr
        self._bar = -1
        self.equity: list[float] = []
        self.units: list[float] = []
        self.trades: list[TradeRecord] = []
        self.open_trade: TradeRecord | None = None
        self.fees_paid = 0.0
        self.orders_filled = 0
        self.orders_rejected = 0
        self.exit_rules_skipped = 0
        self._roles: dict[int, tuple[str, ExitReason]] = {}
        self._exit_orders: list[bt.Order] = []
        self._entry_atr = math.nan
        self._stopped_side: Signal = 0

    def start(self) -> None:
        """Cache the broker and the position object (both are stable during a run)."""
        self._broker = self.broker
        self._position = self.broker.getposition(self.data)

    def next(self) -> None:
        """Decide at the close of this candle; record equity and units after it."""
        self._bar += 1
        size = self._position.size
        held: Signal = 1 if size > 0 else (-1 if size < 0 else 0)
        target: Signal = int(self._side[0])  # type: ignore[assignment]
        if target != self._stopped_side:
            self._stopped_side = 0
        elif target != 0:  # a stopped-out side is re-entered only on a fresh entry signal
            target = 0
        if target != held:
            self._rebalance(held, target)
        self.equity.append(self._broker.getvalue())
        self.units.append(self._position.size)

    def _rebalance(self, held: Signal, target: Signal) -> None:
        if held != 0:
            for order in self._exit_orders:
                self.cancel(order)
            self._exit_orders = []
            self._submit(-held, abs(self._position.size), role="exit", reason="signal")
        if target != 0:
            fraction = self.p.position_fraction * self._size[0]
            size = fraction * self._broker.getvalue() / self.data.close[0]
            if size > 0:
                self._entry_atr = self._atr[0]
                self._submit(target, size, role="entry", reason="signal")

    def _submit(
        self,
        direction: int,
        size: float,
        *,
        role: str,
        reason: ExitReason,
        **kwargs: Any,
    ) -> bt.Order:
        order = self.buy(size=size, **kwargs) if direction > 0 else self.sell(size=size, **kwargs)
        self._roles[order.ref] = (role, reason)
        return order

    def notify_order(self, order: bt.Order) -> None:
        """Turn fills into trade records; count and report rejected orders."""
        if order.status in (order.Submitted, order.Accepted):
            return
        role, reason = self._roles.pop(order.ref, ("", "signal"))
        if order.status == order.Completed:
            self._on_fill(order, role, reason)
        elif order.status in (order.Margin, order.Rejected):
            self.orders_rejected += 1
            logger.warning(
                "Order %s (%s %s, size %.6f) rejected (%s) at bar %d: not enough cash",
                order.ref,
                role,
                "buy" if order.isbuy() else "sell",
                order.created.size,
                order.getstatusname(),
                self._bar + 1,
            )

    def _on_fill(self, order: bt.Order, role: str, reason: ExitReason) -> None:
        # Fills happen in the broker step of the candle after the last next() call.
        bar = self._bar + 1
        executed = order.executed
        self.fees_paid += executed.comm
        self.orders_filled += 1
        if role == "entry":
            side: Signal = 1 if order.isbuy() else -1
            trade = TradeRecord(side, abs(executed.size), bar, executed.price, executed.comm)
            self.open_trade = trade
            self._place_exit_orders(trade)
            return
        trade_or_none = self.open_trade
        if trade_or_none is None:  # defensive: an exit without a recorded entry
            logger.warning("Exit order %s filled with no open trade recorded", order.ref)
            return
        trade_or_none.exit_bar = bar
        trade_or_none.exit_price = executed.price
        trade_or_none.exit_fee = executed.comm
        trade_or_none.exit_reason = reason
        if reason in ("stop_loss", "take_profit"):
            self._stopped_side = trade_or_none.side
        self.trades.append(trade_or_none)
        self.open_trade = None
        self._exit_orders = []

    def _place_exit_orders(self, trade: TradeRecord) -> None:
        orders: list[bt.Order] = []
        rules: tuple[tuple[ExitRuleSettings, ExitReason, int, int], ...] = (
            (self.p.stop_loss, "stop_loss", bt.Order.Stop, -1),
            (self.p.take_profit, "take_profit", bt.Order.Limit, 1),
        )
        for rule, reason, exectype, sign in rules:
            if rule.kind == "none":
                continue
            distance = exit_rule_distance(rule, entry_price=trade.entry_price, atr=self._entry_atr)
            price = None if distance is None else trade.entry_price + sign * trade.side * distance
            if price is None or price <= 0:
                self.exit_rules_skipped += 1
                continue
            oco = orders[0] if orders else None
            orders.append(
                self._submit(
                    -trade.side,
                    trade.size,
                    role="exit",
                    reason=reason,
                    exectype=exectype,
                    price=price,
                    oco=oco,
                )
            )
        self._exit_orders = orders

    def stop(self) -> None:
        """Keep a still-open trade (exit_reason "end") and report skipped exit rules."""
        if self.open_trade is not None:
            self.trades.append(self.open_trade)
            self.open_trade = None
        if self.exit_rules_skipped:
            logger.warning(
                "%d stop-loss/take-profit order(s) not placed (ATR unknown at entry or price <= 0)",
                self.exit_rules_skipped,
            )
