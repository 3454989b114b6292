"""The numpy twin vs backtrader on real BTC candles; no look-ahead in fills; what fees cost."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.errors import DataValidationError
from core.settings import DecisionPolicy, StrategySettings
from ml.decision import positions_for_policies
from ml.policy_search import FoldChoice, chosen_path
from strategy import trades
from strategy.runner import StrategyRun, run_strategy
from strategy.vectorized import VectorRun, simulate_signals
from tests.factories import make_ohlcv
from tests.strategy.helpers import hand_candles, sma_proba, targets

CASH = 10_000.0


def _both(candles, proba, *, policy, strategy):
    """The backtrader run and the numpy twin of one policy's targets at the same costs."""
    planned = targets(proba, policy)
    return _both_targets(candles, planned.side, planned.size, strategy=strategy)


def _both_targets(candles, side, size, *, strategy):
    run = run_strategy(candles, timeframe="1h", side=side, size=size, strategy=strategy)
    twin = simulate_signals(
        candles,
        side,
        sizes=size,
        cash=strategy.cash,
        fee_rate=strategy.fee_rate,
        slippage_bps=strategy.slippage_bps,
        position_fraction=strategy.position_fraction,
    )
    return run, twin


def _assert_engines_agree(run: StrategyRun, twin: VectorRun) -> None:
    relative = (twin.equity / run.equity - 1.0).abs()
    assert relative.max() < 1e-6, f"max relative equity gap {relative.max():.2e}"
    np.testing.assert_allclose(twin.position.to_numpy(), run.position.to_numpy(), rtol=1e-9)
    assert twin.orders == run.orders and twin.orders_rejected == run.orders_rejected
    assert twin.n_trades == len(run.trades)
    assert twin.fees_paid == pytest.approx(run.fees_paid, rel=1e-9)
    entries = twin.fills[twin.fills["role"] == "entry"]
    np.testing.assert_allclose(entries["price"], run.trades["entry_price"], rtol=1e-12)
    pd.testing.assert_frame_equal(twin.trades, run.trades, rtol=1e-9)


@pytest.mark.parametrize("allow_short", [False, True])
def test_engine_check_twin_matches_backtrader_on_btc_slice(btc_1h, allow_short):
    candles = btc_1h.iloc[-3000:]
    strategy = StrategySettings(cash=CASH, fee_rate=0.001, slippage_bps=5.0)
    policy = DecisionPolicy(allow_short=allow_short)
    run, twin = _both(candles, sma_proba(candles), policy=policy, strategy=strategy)
    assert len(run.trades) > 50  # the check exercises many round trips
    _assert_engines_agree(run, twin)


@pytest.mark.slow
def test_engine_check_twin_matches_backtrader_on_full_btc_file(btc_1h):
    strategy = StrategySettings(cash=CASH, fee_rate=0.001, slippage_bps=5.0)
    policy = DecisionPolicy(allow_short=True)
    run, twin = _both(btc_1h, sma_proba(btc_1h), policy=policy, strategy=strategy)
    assert len(btc_1h) > 33_000 and len(run.trades) > 1000
    _assert_engines_agree(run, twin)


def test_fills_are_next_opens_and_same_candle_oracle_edge_vanishes(btc_1h):
    candles = btc_1h.loc["2020-01-01":"2020-03-31"]
    up = (candles["close"] > candles["open"]).to_numpy()
    knows_candle_t = np.where(up, 1.0, 0.0)  # legit at the close of t: t's own direction
    knows_candle_t1 = np.append(knows_candle_t[1:], np.nan)  # look-ahead: t+1's direction
    strategy = StrategySettings(cash=CASH, fee_rate=0.001)
    targets_t, targets_t1 = targets(knows_candle_t).side, targets(knows_candle_t1).side

    honest = run_strategy(candles, timeframe="1h", side=targets_t, strategy=strategy)
    trades = honest.trades[~honest.trades["is_open"]]
    opens = candles["open"]
    # equal up to backtrader's average-price arithmetic (1e-16)
    np.testing.assert_allclose(trades["entry_price"], opens.loc[trades["entry_time"]], rtol=1e-12)
    np.testing.assert_allclose(trades["exit_price"], opens.loc[trades["exit_time"]], rtol=1e-12)
    decided_at = candles.index.get_indexer(trades["entry_time"]) - 1
    assert (knows_candle_t[decided_at] == 1.0).all()  # decided on the candle before the fill

    costs = {"cash": CASH, "fee_rate": 0.001, "slippage_bps": 0.0, "position_fraction": 0.95}
    cheat = simulate_signals(candles, targets_t, fill="open", **costs)  # trades t at t's open
    at_close = simulate_signals(candles, targets_t, fill="close", **costs)
    next_oracle = run_strategy(candles, timeframe="1h", side=targets_t1, strategy=strategy)

    growth = {
        name: math.log(curve.iloc[-1] / CASH)
        for name, curve in {
            "honest": honest.equity,
            "at_close": at_close.equity,
            "cheat": cheat.equity,
            "next_oracle": next_oracle.equity,
        }.items()
    }
    assert growth["cheat"] > math.log(10)  # knowing the candle you trade is a money machine
    assert growth["honest"] < 0.1 * growth["cheat"]  # ... filled at t+1 the edge is gone
    assert growth["at_close"] < 0.1 * growth["cheat"]
    # The cheat is exactly what an oracle of the NEXT candle earns through the honest engine.
    pd.testing.assert_series_equal(cheat.equity, next_oracle.equity, rtol=1e-9)


def _implied_final_equity(trades, candles, *, fee_rate, fraction):
    """Final equity implied by the trade prices alone: each long trade multiplies equity by
    1 + fraction/c * ((exit - entry) - fee * (entry + exit)), c = the close it was sized on."""
    equity = CASH
    closes = candles["close"]
    for trade in trades.itertuples():
        sized_on = closes.iloc[candles.index.get_loc(trade.entry_time) - 1]
        exit_fee = 0.0 if trade.is_open else fee_rate * trade.exit_price
        move = trade.exit_price - trade.entry_price - fee_rate * trade.entry_price - exit_fee
        equity *= 1.0 + fraction / sized_on * move
    return equity


def test_fee_0_vs_10_bps_difference_matches_trades(btc_1h):
    candles = btc_1h.iloc[-4000:]
    side = targets(sma_proba(candles)).side
    runs = {
        fee: run_strategy(
            candles,
            timeframe="1h",
            side=side,
            strategy=StrategySettings(cash=CASH, fee_rate=fee),
        )
        for fee in (0.0, 0.001)
    }
    free, paid = runs[0.0], runs[0.001]
    assert len(free.trades) == len(paid.trades) > 50  # same signals, same trades
    for fee, run in runs.items():
        implied = _implied_final_equity(run.trades, candles, fee_rate=fee, fraction=0.95)
        assert run.equity.iloc[-1] == pytest.approx(implied, rel=1e-9)
    traded_value = (paid.trades["size"] * paid.trades["entry_price"]).sum() + (
        paid.trades["size"] * paid.trades["exit_price"]
    )[~paid.trades["is_open"]].sum()
    assert paid.fees_paid == pytest.approx(0.001 * traded_value, rel=1e-12)
    # First order: every fill costs fee * 0.95 of equity -> log ratio ~ 0.00095 * fills.
    log_cost = math.log(free.equity.iloc[-1] / paid.equity.iloc[-1])
    assert log_cost == pytest.approx(0.001 * 0.95 * paid.orders, rel=0.05)


def test_simulate_signals_hand_example():
    candles = make_ohlcv(4, seed=5)
    twin = simulate_signals(
        candles, [1, 0, 0, 0], cash=1000.0, fee_rate=0.01, slippage_bps=0.0, position_fraction=0.5
    )
    opens, closes = candles["open"].to_numpy(), candles["close"].to_numpy()
    size = 0.5 * 1000.0 / closes[0]
    cash = 1000.0 - size * opens[1] * 1.01
    expected_bar1 = cash + size * closes[1]
    final = cash + size * opens[2] * 0.99
    assert twin.equity.tolist() == pytest.approx([1000.0, expected_bar1, final, final])
    assert (twin.n_trades, twin.orders) == (1, 2)


def test_simulate_signals_trades_table_pairs_fills_and_marks_open_trade():
    candles = make_ohlcv(6, seed=8)
    twin = simulate_signals(
        candles,
        [1, 0, 0, 1, 1, 1],
        cash=1000.0,
        fee_rate=0.001,
        slippage_bps=0.0,
        position_fraction=0.5,
    )
    closed, still_open = twin.trades.iloc[0], twin.trades.iloc[1]
    assert list(twin.trades.columns) == list(trades.TRADE_COLUMNS)
    assert (closed["entry_time"], closed["exit_time"]) == (candles.index[1], candles.index[2])
    assert closed["exit_reason"] == "signal" and closed["bars_held"] == 1
    assert closed["fees"] == pytest.approx(twin.fills["fee"].iloc[:2].sum())
    assert still_open["is_open"] and pd.isna(still_open["exit_time"])
    assert still_open["exit_price"] == candles["close"].iloc[-1] and still_open["bars_held"] == 2
    assert twin.equity.iloc[-1] == pytest.approx(1000.0 + twin.trades["pnl_net"].sum())


def test_simulate_signals_without_trades_has_runner_shaped_empty_table():
    candles = make_ohlcv(5)
    twin = simulate_signals(
        candles, np.zeros(5), cash=1000.0, fee_rate=0.0, slippage_bps=0.0, position_fraction=0.5
    )
    pd.testing.assert_frame_equal(twin.trades, trades.empty_trades(candles.index))


def test_simulate_signals_last_candle_decision_never_fills():
    twin = simulate_signals(
        make_ohlcv(5),
        [0, 0, 0, 0, 1],
        cash=1000.0,
        fee_rate=0.0,
        slippage_bps=0.0,
        position_fraction=0.5,
    )
    assert twin.orders == 0 and (twin.equity == 1000.0).all()


@pytest.mark.parametrize("positions", [[0, 1, 2, 0, 0], [0, 1, np.nan, 0, 0], [0, 1, 0]])
def test_simulate_signals_rejects_bad_positions(positions):
    with pytest.raises(DataValidationError, match="positions"):
        simulate_signals(
            make_ohlcv(5),
            positions,
            cash=1000.0,
            fee_rate=0.0,
            slippage_bps=0.0,
            position_fraction=0.5,
        )


def test_engines_agree_after_an_entry_refused_for_cash():
    """A gap up makes the sized entry unaffordable; both engines retry while the signal holds."""
    rows = [(100.0, 101.0, 99.0, 100.0)] * 6 + [(110.0, 111.0, 109.0, 110.0)] * 8
    candles = hand_candles(rows)
    proba = [0.5] * 5 + [0.6] + [0.52] * 8  # enter at candle 5, then only "hold"
    strategy = StrategySettings(cash=CASH, fee_rate=0.001, position_fraction=0.95)
    run, twin = _both(candles, proba, policy=DecisionPolicy(), strategy=strategy)
    assert run.orders_rejected == 1  # the 8%+ gap made the first entry too expensive
    assert len(run.trades) == 1  # ...and it was retried and filled one candle later
    _assert_engines_agree(run, twin)


def test_simulate_signals_sizes_scale_the_entry():
    candles = make_ohlcv(4, seed=5)
    costs = {"cash": 1000.0, "fee_rate": 0.01, "slippage_bps": 0.0, "position_fraction": 0.5}
    twin = simulate_signals(candles, [1, 1, 0, 0], sizes=[0.4, 1.0, 0.0, 0.0], **costs)
    closes = candles["close"].to_numpy()
    # the size of the candle that decided the entry; a later size does not resize the position
    assert twin.trades["size"].iloc[0] == pytest.approx(0.4 * 0.5 * 1000.0 / closes[0])
    assert twin.position.iloc[1] == twin.position.iloc[2] == pytest.approx(0.2 * 1000 / closes[0])


@pytest.mark.parametrize(
    "sizes", [[0, 1, 1.5, 0, 0], [0, 1, -0.1, 0, 0], [0, 1, np.nan, 0, 0], [1, 1, 1]]
)
def test_simulate_signals_rejects_bad_sizes(sizes):
    with pytest.raises(DataValidationError, match="sizes"):
        simulate_signals(
            make_ohlcv(5),
            [0, 1, 1, 0, 0],
            sizes=sizes,
            cash=1000.0,
            fee_rate=0.0,
            slippage_bps=0.0,
            position_fraction=0.5,
        )


# Non-zero fee AND slippage: slipped fills, capped at the candle's range, on every order.
COSTS = StrategySettings(cash=CASH, fee_rate=0.001, slippage_bps=7.0)


def _synthetic_run():
    """3,000 synthetic hourly candles and a past-only probability that trades often."""
    candles = make_ohlcv(3000, seed=11)
    return candles, sma_proba(candles).to_numpy()


def _flat_gaps(run) -> np.ndarray:
    """Candles between each exit fill and the next entry fill (closed trades in order)."""
    index = run.equity.index
    entries = index.get_indexer(run.trades["entry_time"])[1:]
    exits = index.get_indexer(run.trades["exit_time"].iloc[:-1])
    return entries - exits


def test_engines_agree_with_min_hold():
    candles, proba = _synthetic_run()
    run, twin = _both(candles, proba, policy=DecisionPolicy(min_hold_bars=12), strategy=COSTS)
    plain = targets(proba).side
    assert not np.array_equal(targets(proba, DecisionPolicy(min_hold_bars=12)).side, plain)
    closed = run.trades[~run.trades["is_open"]]
    assert len(closed) > 20 and (closed["bars_held"] >= 12).all()
    assert (closed["bars_held"] == 12).any()  # the minimum binds
    _assert_engines_agree(run, twin)


def test_engines_agree_with_cooldown():
    candles, proba = _synthetic_run()
    run, twin = _both(candles, proba, policy=DecisionPolicy(cooldown_bars=24), strategy=COSTS)
    assert len(run.trades) > 20
    gaps = _flat_gaps(run)
    assert (gaps >= 24).all() and (gaps == 24).any()  # the cooldown binds
    _assert_engines_agree(run, twin)


def test_engines_agree_with_proba_sizing():
    candles, proba = _synthetic_run()
    policy = DecisionPolicy(sizing="proba", edge_scale=3.0)
    run, twin = _both(candles, proba, policy=policy, strategy=COSTS)
    entry_sizes = targets(proba, policy).size[targets(proba, policy).size > 0]
    assert len(run.trades) > 20 and len(np.unique(entry_sizes.round(6))) > 10
    assert (entry_sizes < 1).any() and (entry_sizes == 1).any()  # scaled and capped
    _assert_engines_agree(run, twin)


def test_engines_agree_with_shorts_on_their_own_thresholds():
    candles, proba = _synthetic_run()
    policy = DecisionPolicy(
        entry_threshold=0.6,
        exit_threshold=0.5,
        allow_short=True,
        short_entry_threshold=0.35,
        short_exit_threshold=0.45,
    )
    run, twin = _both(candles, proba, policy=policy, strategy=COSTS)
    sides = run.trades["side"]
    assert (sides == -1).sum() > 10 and (sides == 1).sum() > 10
    _assert_engines_agree(run, twin)


def test_engines_agree_with_every_rule_at_once_and_reversals():
    candles, proba = _synthetic_run()
    policy = DecisionPolicy(
        entry_threshold=0.58,
        exit_threshold=0.52,
        min_hold_bars=5,
        cooldown_bars=0,  # 0: a long may reverse straight into a short
        sizing="proba",
        edge_scale=4.0,
        allow_short=True,
        short_entry_threshold=0.42,
        short_exit_threshold=0.48,
    )
    run, twin = _both(candles, proba, policy=policy, strategy=COSTS)
    side = targets(proba, policy).side
    assert (side[1:] * side[:-1] == -1).any()  # at least one direct reversal
    _assert_engines_agree(run, twin)


def test_engines_agree_on_a_nested_path_that_switches_policy_mid_position():
    candles, proba = _synthetic_run()
    policies = [
        DecisionPolicy(min_hold_bars=12, sizing="proba"),
        DecisionPolicy(allow_short=True, cooldown_bars=6),
        DecisionPolicy(entry_threshold=0.52, exit_threshold=0.45, sizing="proba", edge_scale=2),
    ]
    side, size = positions_for_policies(proba, policies)
    windows = [(1, 0, 700, 0), (2, 700, 1500, 1), (3, 1500, 2200, 2), (4, 2200, 3000, 0)]
    choices = [FoldChoice(f, a, b, a, c, 0.0, 0.0, 0, 1, "test") for f, a, b, c in windows]
    path_side, path_size = chosen_path(side, size, choices)
    run, twin = _both_targets(candles, path_side, path_size, strategy=COSTS)
    assert len(run.trades) > 20
    _assert_engines_agree(run, twin)
