"""MLSignalStrategy on hand-made candles: fills, sizing, shorts, stops, take-profits, rejections."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError
from core.settings import DecisionPolicy, ExitRuleSettings, StrategySettings
from strategy.ml_signal import check_exit_rules, exit_rule_distance
from strategy.runner import run_strategy
from tests.conftest import log_has
from tests.factories import make_ohlcv
from tests.strategy.helpers import hand_candles, targets

NAN = math.nan
# bar:     0                   1                     2                    3                    4
ROWS = [(100, 101, 99, 100), (102, 104, 101, 103), (103, 106, 102, 105), (104, 105, 103, 104),
        (104, 105, 103, 104)]  # fmt: skip
HOLD_LONG = [0.6, 0.52, 0.52, 0.52, 0.52]  # enter, then hold without re-entering after an exit
HOLD_SHORT = [0.4, 0.48, 0.48, 0.48, 0.48]


SHORTS = DecisionPolicy(allow_short=True)  # long >= 0.55 / exit < 0.5, short <= 0.45 / exit > 0.5


def _run(rows, proba, *, policy=None, frame=None, **strategy):
    """Trade the targets `policy` (default `DecisionPolicy()`) takes on `proba`."""
    settings = {"cash": 1000.0, "fee_rate": 0.0, "position_fraction": 0.5, **strategy}
    planned = targets(proba, policy)
    return run_strategy(
        hand_candles(rows) if frame is None else frame,
        timeframe="1h",
        side=planned.side,
        size=planned.size,
        strategy=StrategySettings(**settings),
    )


def test_ml_signal_long_fills_at_next_open_and_sizes_from_close():
    run = _run(ROWS, [0.6, 0.6, 0.4, NAN, NAN])
    trade = run.trades.iloc[0]
    assert len(run.trades) == 1
    assert trade["entry_time"] == run.equity.index[1] and trade["exit_time"] == run.equity.index[3]
    assert (trade["entry_price"], trade["exit_price"]) == (102.0, 104.0)  # next opens
    assert trade["size"] == pytest.approx(0.5 * 1000 / 100)  # fraction * equity / close[t]
    assert trade["pnl"] == pytest.approx(10.0) and trade["bars_held"] == 2
    assert trade["exit_reason"] == "signal" and not trade["is_open"]
    assert run.equity.tolist() == pytest.approx([1000, 1005, 1015, 1010, 1010])
    assert run.position.tolist() == pytest.approx([0, 5, 5, 0, 0])
    assert run.orders == 2 and run.fees_paid == 0.0


def test_ml_signal_fees_are_percent_of_traded_value_per_side():
    run = _run(ROWS, [0.6, 0.6, 0.4, NAN, NAN], fee_rate=0.001)
    trade = run.trades.iloc[0]
    assert trade["fees"] == pytest.approx(0.001 * 5 * (102 + 104))
    assert trade["pnl_net"] == pytest.approx(10.0 - 0.001 * 5 * (102 + 104))
    assert run.fees_paid == pytest.approx(trade["fees"])
    assert run.equity.iloc[-1] == pytest.approx(1000 + trade["pnl_net"])


def test_ml_signal_slippage_moves_fills_against_trader_capped_at_range():
    rows = [*ROWS]
    rows[1] = (102, 102.05, 101, 102)  # high just above the open: the buy slip is capped
    run = _run(rows, [0.6, 0.6, 0.4, NAN, NAN], slippage_bps=10)
    trade = run.trades.iloc[0]
    assert trade["entry_price"] == pytest.approx(102.05)
    assert trade["exit_price"] == pytest.approx(104 * (1 - 0.001))


@pytest.mark.parametrize(
    "policy",
    [
        DecisionPolicy(entry_threshold=0.55, exit_threshold=0.5),
        DecisionPolicy(entry_threshold=0.55, exit_threshold=0.5, min_hold_bars=6, cooldown_bars=4),
        DecisionPolicy(allow_short=True, min_hold_bars=3, sizing="proba"),
    ],
)
def test_ml_signal_holds_the_positions_the_policy_targets(policy):
    candles = make_ohlcv(400, seed=3)
    proba = np.random.default_rng(3).uniform(0.4, 0.6, len(candles))
    proba[:20] = np.nan
    planned = targets(proba, policy)
    run = run_strategy(
        candles, timeframe="1h", side=planned.side, size=planned.size, strategy=StrategySettings()
    )
    held_after_fill = np.sign(run.position.to_numpy())[1:]
    assert run.orders_rejected == 0 and len(run.trades) > 5
    np.testing.assert_array_equal(held_after_fill, planned.side[:-1])


def test_ml_signal_sizes_entries_by_the_target_size():
    # proba sizing: 0.56 -> min(1, 5 * |2 * 0.56 - 1|) = 0.6 of position_fraction, fixed at entry
    policy = DecisionPolicy(sizing="proba", edge_scale=5.0)
    run = _run(ROWS, [0.56, 0.9, 0.4, NAN, NAN], policy=policy)
    trade = run.trades.iloc[0]
    assert len(run.trades) == 1
    assert trade["size"] == pytest.approx(0.6 * 0.5 * 1000 / 100)  # size * fraction * equity / c
    assert run.position.tolist() == pytest.approx([0, 3, 3, 0, 0])  # 0.9 did not resize it


def test_ml_signal_short_side_and_reversal():
    run = _run(ROWS, [0.4, 0.4, 0.6, 0.6, 0.6], policy=SHORTS)
    short, long = run.trades.iloc[0], run.trades.iloc[1]
    assert (short["side"], short["entry_price"], short["exit_price"]) == (-1, 102.0, 104.0)
    assert short["pnl"] == pytest.approx(-5 * 2.0) and short["exit_reason"] == "signal"
    value_at_decision = 1000 + 5 * 102 - 5 * 105  # cash after the short minus the buy-back value
    assert long["side"] == 1 and long["entry_price"] == 104.0
    assert long["size"] == pytest.approx(0.5 * value_at_decision / 105)
    assert long["is_open"] and long["exit_reason"] == "end" and pd.isna(long["exit_time"])
    assert long["exit_price"] == 104.0  # marked to the last close
    assert run.position.iloc[1] == pytest.approx(-5.0)


def test_ml_signal_shorts_ignored_without_allow_short():
    run = _run(ROWS, [0.4, 0.4, 0.3, 0.2, 0.1])
    assert run.trades.empty and run.orders == 0


def test_ml_signal_percent_stop_loss_fills_at_stop_price():
    rows = [*ROWS]
    rows[2] = (103, 104, 99, 100)  # low crosses the 2 % stop at 99.96
    run = _run(rows, HOLD_LONG, stop_loss={"kind": "percent", "value": 2.0})
    trade = run.trades.iloc[0]
    assert len(run.trades) == 1 and run.position.iloc[-1] == 0.0
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_price"] == pytest.approx(102 * 0.98)
    assert trade["exit_time"] == run.equity.index[2]


def test_ml_signal_stop_loss_gap_fills_at_open():
    rows = [*ROWS]
    rows[2] = (95, 96, 94, 95)  # opens below the stop
    run = _run(rows, HOLD_LONG, stop_loss={"kind": "percent", "value": 2.0})
    assert run.trades.iloc[0]["exit_price"] == 95.0
    assert run.trades.iloc[0]["exit_reason"] == "stop_loss"


def test_ml_signal_take_profit_and_stop_in_one_candle_assumes_stop_first():
    rows = [*ROWS]
    rows[2] = (103, 106, 99, 103)  # both 99.96 (stop) and 105.06 (take-profit) are touched
    run = _run(
        rows,
        HOLD_LONG,
        stop_loss={"kind": "percent", "value": 2.0},
        take_profit={"kind": "percent", "value": 3.0},
    )
    assert len(run.trades) == 1 and run.trades.iloc[0]["exit_reason"] == "stop_loss"
    assert run.position.iloc[-1] == 0.0  # the OCO sibling was cancelled, no stray order


def test_ml_signal_signal_exit_cancels_resting_stop():
    rows = [*ROWS]
    rows[2] = (103, 104, 99, 100)  # the exit candle also crosses the 2 % stop at 99.96
    run = _run(rows, [0.6, 0.4, NAN, NAN, NAN], stop_loss={"kind": "percent", "value": 2.0})
    assert len(run.trades) == 1 and run.position.iloc[-1] == 0.0  # no stray short
    assert run.trades.iloc[0]["exit_reason"] == "signal"
    assert run.trades.iloc[0]["exit_price"] == 103.0  # the open, before the stop could trigger


def test_ml_signal_take_profit_fills_at_limit_price_and_waits_for_a_fresh_entry():
    rows = [*ROWS, (104, 105, 103, 104), (104, 105, 103, 104)]
    run = _run(
        rows, [0.6, 0.6, 0.6, 0.4, 0.6, 0.6, 0.6], take_profit={"kind": "percent", "value": 3.0}
    )
    first, second = run.trades.iloc[0], run.trades.iloc[1]
    assert len(run.trades) == 2
    assert first["exit_reason"] == "take_profit"
    assert first["exit_price"] == pytest.approx(102 * 1.03)  # bar 2 high 106 crosses 105.06
    # The target stays long at bar 2 but the stopped side is not re-entered (bar 3 stays flat);
    # the policy's exit at bar 3 and fresh entry at bar 4 fill at the open of bar 5.
    assert run.position.iloc[3] == 0.0 and run.position.iloc[4] == 0.0
    assert second["entry_time"] == run.equity.index[5] and second["is_open"]


def test_ml_signal_short_stop_loss_buys_back_at_stop():
    rows = [*ROWS]
    rows[2] = (103, 106, 102, 103)
    run = _run(
        rows,
        HOLD_SHORT,
        policy=SHORTS,
        stop_loss={"kind": "percent", "value": 2.0},
    )
    trade = run.trades.iloc[0]
    assert len(run.trades) == 1 and run.position.iloc[-1] == 0.0
    assert trade["side"] == -1 and trade["exit_reason"] == "stop_loss"
    assert trade["exit_price"] == pytest.approx(102 * 1.02)


def test_ml_signal_atr_stop_uses_atr_known_at_entry_decision():
    frame = hand_candles([*ROWS[:2], (103, 104, 98.5, 100), *ROWS[3:]])
    frame["atr"] = [2.0, 50.0, 50.0, 50.0, 50.0]  # later ATR values must not move the stop
    run = _run(
        None,
        HOLD_LONG,
        frame=frame,
        cash=10_000.0,
        position_fraction=0.95,
        stop_loss={"kind": "atr", "value": 1.5},
    )
    assert run.trades.iloc[0]["exit_price"] == pytest.approx(102 - 1.5 * 2.0)
    assert run.trades.iloc[0]["exit_reason"] == "stop_loss"


def test_ml_signal_atr_rule_without_atr_column_is_a_config_error():
    with pytest.raises(ConfigError, match="add_atr"):
        _run(ROWS, [0.6] * 5, stop_loss={"kind": "atr", "value": 2.0})


def test_ml_signal_unaffordable_entry_is_rejected_and_logged(caplog):
    rows = [*ROWS]
    rows[1] = (110, 111, 109, 110)  # a +10 % gap: 0.95 of equity at 100 costs 1045 at 110
    with caplog.at_level(logging.WARNING):
        run = _run(rows, [0.6, NAN, NAN, NAN, NAN], position_fraction=0.95)
    assert run.orders_rejected == 1 and run.trades.empty
    assert log_has(caplog, "rejected (Margin)", logging.WARNING)


def test_exit_rule_distance_percent_and_atr():
    percent = ExitRuleSettings(kind="percent", value=2.0)
    atr = ExitRuleSettings(kind="atr", value=2.0)
    assert exit_rule_distance(percent, entry_price=50.0, atr=NAN) == pytest.approx(1.0)
    assert exit_rule_distance(atr, entry_price=50.0, atr=0.5) == pytest.approx(1.0)
    assert exit_rule_distance(atr, entry_price=50.0, atr=NAN) is None
    assert exit_rule_distance(ExitRuleSettings(), entry_price=50.0, atr=1.0) is None


def test_check_exit_rules_refuses_full_percent_stop():
    with pytest.raises(ConfigError, match="stop_loss"):
        check_exit_rules(ExitRuleSettings(kind="percent", value=100.0), ExitRuleSettings())


def test_ml_signal_short_keeps_wide_stop_and_take_profit_together():
    # Both resting buy orders together cost more than the cash: they must still both be live.
    rows = [*ROWS]
    rows[2] = (101, 101.5, 98, 99)  # low crosses the 3 % take-profit at 98.94
    run = _run(
        rows,
        HOLD_SHORT,
        policy=SHORTS,
        position_fraction=0.95,
        stop_loss={"kind": "percent", "value": 10.0},
        take_profit={"kind": "percent", "value": 3.0},
    )
    assert run.orders_rejected == 0
    trade = run.trades.iloc[0]
    assert trade["exit_reason"] == "take_profit"
    assert trade["exit_price"] == pytest.approx(102 * 0.97)
