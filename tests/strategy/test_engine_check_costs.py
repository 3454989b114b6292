"""The numpy twin vs backtrader with fees AND slippage, on real candles from tests/fixtures.

Runs without the shared data, so every test run compares the two engines' cost handling: with
20 bps slippage about half the fills slip by the full amount and half are capped at the candle's
high/low, on buys and on sells (long exits and short entries).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.settings import DecisionPolicy, QualitySettings, StrategySettings
from data.files import read_candle_file
from data.quality import clean_candles
from strategy.runner import run_strategy
from strategy.vectorized import simulate_signals
from tests.strategy.helpers import sma_proba, targets

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "cdd_btc_1h_overlap.csv"
COSTS = StrategySettings(cash=10_000.0, fee_rate=0.001, slippage_bps=20.0, position_fraction=0.95)


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    """254 cleaned BTC/USDT hours (2020-11-19 .. 11-30, one missing hour)."""
    raw = read_candle_file(FIXTURE)
    return clean_candles(raw.frame, timeframe="1h", cfg=QualitySettings()).frame


@pytest.mark.parametrize(
    "policy",
    [
        DecisionPolicy(),
        DecisionPolicy(allow_short=True),
        DecisionPolicy(allow_short=True, min_hold_bars=4),
        DecisionPolicy(allow_short=True, cooldown_bars=3),
        DecisionPolicy(allow_short=True, sizing="proba", edge_scale=3.0),
    ],
    ids=["long", "short", "min-hold", "cooldown", "proba-sizing"],
)
def test_twin_matches_backtrader_with_fees_and_slippage(
    candles: pd.DataFrame, policy: DecisionPolicy
) -> None:
    planned = targets(sma_proba(candles, window=12), policy)
    run = run_strategy(
        candles, timeframe="1h", side=planned.side, size=planned.size, strategy=COSTS
    )
    twin = simulate_signals(
        candles,
        planned.side,
        sizes=planned.size,
        cash=COSTS.cash,
        fee_rate=COSTS.fee_rate,
        slippage_bps=COSTS.slippage_bps,
        position_fraction=COSTS.position_fraction,
    )
    sells = twin.fills[twin.fills["size"] < 0]
    assert len(run.trades) >= 14 and len(sells) >= 14  # many round trips, exits that slip down
    np.testing.assert_allclose(twin.equity.to_numpy(), run.equity.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(twin.position.to_numpy(), run.position.to_numpy(), rtol=1e-9)
    assert (twin.orders, twin.orders_rejected) == (run.orders, run.orders_rejected)
    assert twin.fees_paid == pytest.approx(run.fees_paid, rel=1e-9)
    pd.testing.assert_frame_equal(twin.trades, run.trades, rtol=1e-9)
