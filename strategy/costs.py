"""Trading costs for backtrader: a fractional-size percent commission, cash and slippage."""

from __future__ import annotations

import logging

import backtrader as bt

from core.settings import StrategySettings

logger = logging.getLogger(__name__)

BPS = 1e-4
"""One basis point as a fraction."""


def to_bps(fraction: float) -> float:
    """A fraction (a fee rate, a return) in basis points.

    >>> to_bps(0.001), to_bps(0.00075)
    (10.0, 7.5)
    """
    return fraction / BPS


class FractionalPercentCommission(bt.CommInfoBase):
    """Spot crypto costs: a percent fee per side on traded value, fractional units.

    `percabs=True` makes `commission=0.001` mean 0.1 % (backtrader's default would read it as
    0.001 %), and `getsize` returns fractional units (the default truncates to whole units, so
    0.5 BTC orders would silently never be placed). See NOTES.md, backtrader section.

    >>> info = FractionalPercentCommission(commission=0.001)
    >>> info.getcommission(0.5, 20_000.0), info.getsize(20_000.0, 5_000.0)
    (10.0, 0.25)
    """

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
    )

    def getsize(self, price: float, cash: float) -> float:
        """Fractional units that `cash` buys at `price` (times leverage)."""
        return float(self.p.leverage * (cash / price))


def configure_broker(cerebro: bt.Cerebro, cfg: StrategySettings) -> None:
    """Set starting cash, the percent fee and slippage (basis points) on `cerebro`'s broker.

    Slippage moves every fill against the trader by `slippage_bps` of the price (market orders
    at the next open included: `slip_open=True`). A slipped price outside the candle's range is
    capped at its high (buys) or low (sells) (`slip_match=True, slip_out=False`), because no
    trade printed beyond it; `strategy.vectorized` applies the same cap. An order opening a
    position is refused (status Margin) when its cost plus fee exceeds the cash at the fill.
    """
    broker = cerebro.getbroker()
    broker.setcash(cfg.cash)
    broker.addcommissioninfo(FractionalPercentCommission(commission=cfg.fee_rate))
    # No pseudo-execution at submission: it would add up the resting stop-loss and take-profit
    # of a short as if both could fill and refuse them; cash is checked at the fill instead.
    broker.set_checksubmit(False)
    broker.set_slippage_perc(
        cfg.slippage_bps * BPS,
        slip_open=True,
        slip_limit=True,
        slip_match=True,
        slip_out=False,
    )
    logger.debug(
        "Broker: cash=%.2f fee_rate=%.5f slippage_bps=%.2f",
        cfg.cash,
        cfg.fee_rate,
        cfg.slippage_bps,
    )
