"""The numpy twin vs backtrader on real BTC candles; no look-ahead in fills; what fees cost."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from ml.signals import signals_from_proba

from core.errors import DataValidationError
from core.settings import SignalSettings, StrategySettings
from strategy import trades
from strategy.runner import StrategyRun, run_strategy
from strategy.vectorized import VectorRun, simulate_signals
from tests.factories import make_ohlcv
from tests.strategy.helpers import hand_candles, sma_proba, with_proba

CASH = 10_000.0


def _both(candles, proba, *, signal, strategy):
    """The backtrader run and the numpy twin of the same probabilities and costs."""
    run = run_strategy(with_proba(candles, proba), timeframe="1h", signal=signal, strategy=strategy)
    twin = simulate_signals(
        candles,
        signals_from_proba(proba, signal),
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
    signal = SignalSettings(allow_short=allow_short)
    run, twin = _both(candles, sma_proba(candles), signal=signal, strategy=strategy)
    assert len(run.trades) > 50  # the check exercises many round trips
    _assert_engines_agree(run, twin)


@pytest.mark.slow
def test_engine_check_twin_matches_backtrader_on_full_btc_file(btc_1h):
    strategy = StrategySettings(cash=CASH, fee_rate=0.001, slippage_bps=5.0)
    signal = SignalSettings(allow_short=True)
    run, twin = _both(btc_1h, sma_proba(btc_1h), signal=signal, strategy=strategy)
    assert len(btc_1h) > 33_000 and len(run.trades) > 1000
    _assert_engines_agree(run, twin)


def test_fills_are_next_opens_and_same_candle_oracle_edge_vanishes(btc_1h):
    candles = btc_1h.loc["2020-01-01":"2020-03-31"]
    up = (candles["close"] > candles["open"]).to_numpy()
    knows_candle_t = np.where(up, 1.0, 0.0)  # legit at the close of t: t's own direction
    knows_candle_t1 = np.append(knows_candle_t[1:], np.nan)  # look-ahead: t+1's direction
    signal, strategy = SignalSettings(), StrategySettings(cash=CASH, fee_rate=0.001)

    honest = run_strategy(
        with_proba(candles, knows_candle_t), timeframe="1h", signal=signal, strategy=strategy
    )
    trades = honest.trades[~honest.trades["is_open"]]
    opens = candles["open"]
    # equal up to backtrader's average-price arithmetic (1e-16)
    np.testing.assert_allclose(trades["entry_price"], opens.loc[trades["entry_time"]], rtol=1e-12)
    np.testing.assert_allclose(trades["exit_price"], opens.loc[trades["exit_time"]], rtol=1e-12)
    decided_at = candles.index.get_indexer(trades["entry_time"]) - 1
    assert (knows_candle_t[decided_at] == 1.0).all()  # decided on the candle before the fill

    targets = signals_from_proba(knows_candle_t, signal)
    costs = {"cash": CASH, "fee_rate": 0.001, "slippage_bps": 0.0, "position_fraction": 0.95}
    cheat = simulate_signals(candles, targets, fill="open", **costs)  # trades t at t's open
    at_close = simulate_signals(candles, targets, fill="close", **costs)
    next_oracle = run_strategy(
        with_proba(candles, knows_candle_t1), timeframe="1h", signal=signal, strategy=strategy
    )

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
    proba = sma_proba(candles)
    runs = {
        fee: run_strategy(
            with_proba(candles, proba),
            timeframe="1h",
            signal=SignalSettings(),
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
    run, twin = _both(candles, proba, signal=SignalSettings(), strategy=strategy)
    assert run.orders_rejected == 1  # the 8%+ gap made the first entry too expensive
    assert len(run.trades) == 1  # ...and it was retried and filled one candle later
    _assert_engines_agree(run, twin)
