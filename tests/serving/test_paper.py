"""`serving.paper`: candle by candle, the paper account equals `simulate_signals`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.paper import Market, PaperCandle, PaperCosts, advance_paper
from storage.paper import MarketDecision, PaperMark
from strategy.vectorized import simulate_signals
from tests.factories import make_ohlcv

MARKET = Market("binance", "BTC/USDT", "1h")


def _candles(frame: pd.DataFrame) -> list[PaperCandle]:
    stamps = frame.index.as_unit("ms").asi8.tolist()
    return [
        PaperCandle(ms, row.open, row.high, row.low, row.close)
        for ms, row in zip(stamps, frame.itertuples(), strict=True)
    ]


def _decisions(frame: pd.DataFrame, side: np.ndarray, size: np.ndarray) -> dict:
    stamps = frame.index.as_unit("ms").asi8.tolist()
    return {
        ms: MarketDecision(ms, int(s), float(z), "m")
        for ms, s, z in zip(stamps, side, size, strict=True)
    }


@pytest.mark.parametrize(
    ("fraction", "slippage_bps", "chunk"), [(0.95, 0.0, 1), (0.95, 25.0, 7), (1.0, 10.0, 50)]
)
def test_advance_paper_equals_simulate_signals_in_any_chunks(
    fraction: float, slippage_bps: float, chunk: int
) -> None:
    frame = make_ohlcv(400, seed=11)
    rng = np.random.default_rng(5)
    side = np.repeat(rng.choice([-1, 0, 1], size=80), 5)
    # the whole equity at fraction 1: the fee makes some entries unaffordable (refused)
    top = 1.0 if fraction == 1.0 else rng.uniform(0.2, 1.0, size=80)
    size = np.where(side != 0, np.repeat(top * np.ones(80), 5), 0.0)
    costs = PaperCosts(
        cash=10_000.0, fee_rate=0.001, slippage_bps=slippage_bps, position_fraction=fraction
    )
    candles, decisions = _candles(frame), _decisions(frame, side, size)
    marks: list[PaperMark] = []
    orders = []
    for start in range(0, len(candles), chunk):  # ticks of any length continue exactly
        new, filled = advance_paper(
            marks[-1] if marks else None,
            candles[start : start + chunk],
            decisions,
            market=MARKET,
            costs=costs,
        )
        marks += new
        orders += filled
    run = simulate_signals(
        frame,
        side,
        sizes=size,
        cash=costs.cash,
        fee_rate=costs.fee_rate,
        slippage_bps=slippage_bps,
        position_fraction=fraction,
    )
    equity = np.array([mark.equity for mark in marks])
    assert np.abs(equity - run.equity.to_numpy()).max() <= 1e-9
    assert [mark.units for mark in marks] == pytest.approx(run.position.tolist(), abs=1e-12)
    filled = [order for order in orders if order.status == "filled"]
    assert len(filled) == run.orders > 20
    assert [o.price for o in filled] == pytest.approx(run.fills["price"].tolist(), rel=1e-15)
    assert sum(o.status == "rejected" for o in orders) == run.orders_rejected
    if fraction == 1.0:
        assert run.orders_rejected > 0  # the refused entries are exercised


def test_advance_paper_keeps_the_target_without_a_decision() -> None:
    frame = make_ohlcv(6, seed=2)
    costs = PaperCosts(cash=1000.0, fee_rate=0.0, slippage_bps=0.0, position_fraction=0.5)
    candles = _candles(frame)
    decisions = {candles[0].open_ms: MarketDecision(candles[0].open_ms, 1, 1.0, "m")}
    marks, orders = advance_paper(None, candles, decisions, market=MARKET, costs=costs)
    assert [mark.target_side for mark in marks] == [1] * 6
    assert [o.role for o in orders] == ["entry"]
    assert marks[-1].model_id is None and marks[0].model_id == "m"


def test_advance_paper_refuses_candles_before_the_last_mark() -> None:
    frame = make_ohlcv(3, seed=2)
    costs = PaperCosts(cash=1000.0, fee_rate=0.0, slippage_bps=0.0, position_fraction=0.5)
    candles = _candles(frame)
    marks, _ = advance_paper(None, candles, {}, market=MARKET, costs=costs)
    with pytest.raises(ValueError, match="is not after the newest mark"):
        advance_paper(marks[-1], candles[1:], {}, market=MARKET, costs=costs)
