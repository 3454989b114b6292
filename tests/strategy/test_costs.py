"""FractionalPercentCommission and configure_broker: percent fees, fractional units, slippage."""

from __future__ import annotations

import backtrader as bt
import pytest

from core.settings import StrategySettings
from strategy.costs import FractionalPercentCommission, configure_broker
from strategy.feeds import PredictionFeed
from tests.strategy.helpers import hand_candles, with_targets


class _BuyOnce(bt.Strategy):
    params = (("size", 0.35),)

    def __init__(self):
        self.fills = []

    def next(self):
        if len(self) == 1:
            self.buy(size=self.p.size)

    def notify_order(self, order):
        if order.status == order.Completed:
            self.fills.append((order.executed.size, order.executed.price, order.executed.comm))


def _buy_once(cfg, *, size=0.35):
    frame = with_targets(hand_candles([(100, 101, 99, 100), (102, 103, 101, 102)]), [0, 0])
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(PredictionFeed(dataname=frame, openinterest=None))
    configure_broker(cerebro, cfg)
    cerebro.addstrategy(_BuyOnce, size=size)
    strategy = cerebro.run()[0]
    return strategy, cerebro.getbroker()


def test_commission_is_absolute_percent_of_value():
    info = FractionalPercentCommission(commission=0.001)
    assert info.getcommission(2.0, 25_000.0) == pytest.approx(50.0)  # 0.1 %, not 0.001 %
    assert info.getcommission(-2.0, 25_000.0) == pytest.approx(50.0)


def test_commission_getsize_is_fractional():
    info = FractionalPercentCommission(commission=0.001)
    assert info.getsize(7_177.0, 5_000.0) == pytest.approx(5_000.0 / 7_177.0)


def test_configure_broker_fills_fractional_size_with_fee_at_next_open():
    strategy, broker = _buy_once(StrategySettings(cash=1_000.0, fee_rate=0.001))
    assert strategy.fills == [(0.35, 102.0, pytest.approx(0.35 * 102.0 * 0.001))]
    assert broker.getcash() == pytest.approx(1_000.0 - 0.35 * 102.0 * 1.001)


def test_configure_broker_applies_slippage_in_bps():
    strategy, _ = _buy_once(StrategySettings(cash=1_000.0, fee_rate=0.0, slippage_bps=50))
    assert strategy.fills[0][1] == pytest.approx(102.0 * 1.005)


def test_configure_broker_caps_slippage_at_candle_high():
    strategy, _ = _buy_once(StrategySettings(cash=1_000.0, fee_rate=0.0, slippage_bps=500))
    assert strategy.fills[0][1] == pytest.approx(103.0)  # 102 * 1.05 would be above the high
