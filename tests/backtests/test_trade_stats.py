"""Trade statistics, the trade list and the headline cards on hand-computed cases."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest

from backtests.headline import compare, headline
from backtests.report_json import trades_payload
from backtests.run import BacktestResult
from backtests.trade_stats import (
    longest_losing_streak,
    rows_to_show,
    trade_records,
    trade_statistics,
)
from strategy import trades
from tests.backtests.test_metrics import _trades
from tests.factories import make_ohlcv


@pytest.fixture(scope="module")
def index() -> pd.DatetimeIndex:
    return pd.DatetimeIndex(make_ohlcv(40, seed=3).index)


def test_trade_statistics_by_hand(index: pd.DatetimeIndex) -> None:
    # (entry_bar, exit_bar, size, entry_price, exit_price, fees): net +9, -3, -2, +19, open
    rows = [
        (0, 2, 1.0, 100.0, 110.0, 1.0),
        (3, 7, 1.0, 100.0, 98.0, 1.0),
        (8, 9, 2.0, 50.0, 49.5, 1.0),
        (10, 20, 1.0, 100.0, 120.0, 1.0),
        (30, None, 1.0, 100.0, 90.0, 0.5),
    ]
    stats = trade_statistics(_trades(rows, index), timeframe="1h")
    assert (stats.n_trades, stats.n_open_trades) == (4, 1)
    assert (stats.n_winners, stats.n_losers) == (2, 2)
    assert stats.win_rate == pytest.approx(0.5)
    assert stats.profit_factor == pytest.approx(28 / 5)
    assert stats.expectancy == pytest.approx(23 / 4)
    assert stats.expectancy_return == pytest.approx((0.09 - 0.03 - 0.02 + 0.19) / 4)
    assert (stats.best, stats.worst) == (pytest.approx(19.0), pytest.approx(-3.0))
    assert (stats.best_return, stats.worst_return) == (pytest.approx(0.19), pytest.approx(-0.03))
    assert stats.gross_pnl == pytest.approx(10 - 2 - 1 + 20)
    assert stats.fees == pytest.approx(4.0)
    assert stats.net_pnl == pytest.approx(23.0)
    assert stats.avg_holding_bars == pytest.approx((2 + 4 + 1 + 10) / 4)
    assert stats.median_holding_bars == pytest.approx(3.0)
    assert stats.median_holding_seconds == pytest.approx(3 * 3600)
    assert stats.longest_losing_streak == 2


def test_trade_statistics_without_trades_are_undefined_not_zero(index: pd.DatetimeIndex) -> None:
    stats = trade_statistics(trades.empty_trades(index), timeframe="1h")
    assert (stats.n_trades, stats.n_open_trades, stats.longest_losing_streak) == (0, 0, 0)
    for name in ("win_rate", "profit_factor", "expectancy", "best", "worst", "avg_holding_bars"):
        assert math.isnan(getattr(stats, name)), name
    assert stats.net_pnl == 0.0
    assert trade_records(trades.empty_trades(index)) == []


def test_trade_statistics_all_losers(index: pd.DatetimeIndex) -> None:
    rows = [(i * 3, i * 3 + 2, 1.0, 100.0, 99.0 - i, 0.5) for i in range(5)]
    stats = trade_statistics(_trades(rows, index), timeframe="4h")
    assert stats.win_rate == 0.0
    assert stats.profit_factor == 0.0
    assert stats.longest_losing_streak == 5
    assert stats.best == pytest.approx(-1.5) and stats.worst == pytest.approx(-5.5)
    assert stats.avg_holding_seconds == pytest.approx(2 * 4 * 3600)


def test_longest_losing_streak_counts_breakeven_as_a_break() -> None:
    assert longest_losing_streak([-1.0, -1.0, 0.0, -1.0]) == 2
    assert longest_losing_streak([2.0, 3.0]) == 0


def test_trade_records_are_in_entry_order_with_open_trades_marked(index: pd.DatetimeIndex) -> None:
    rows = [
        (10, 12, 1.0, 100.0, 90.0, 1.0),
        (0, 2, 2.0, 50.0, 55.0, 1.0),
        (30, None, 1.0, 1.0, 2.0, 0.0),
    ]
    records = trade_records(_trades(rows, index))
    assert [r["number"] for r in records] == [1, 2, 3]
    assert [r["entry_time"] for r in records] == [index[i].isoformat() for i in (0, 10, 30)]
    assert records[0]["pnl_net"] == pytest.approx(9.0)
    assert records[0]["return"] == pytest.approx(9.0 / 100.0)
    assert records[0]["side"] == "long" and records[0]["exit_reason"] == "signal"
    assert records[2]["exit_time"] is None and records[2]["is_open"]


def test_rows_to_show_keeps_the_first_rows_and_the_extremes() -> None:
    rows = [{"number": i + 1, "pnl_net": float(p)} for i, p in enumerate([1, 2, 3, 50, -7, 4, -60])]
    shown = rows_to_show(rows, limit=3, extremes=1)
    assert [r["number"] for r in shown] == [1, 2, 3, 4, 7]
    assert rows_to_show(rows, limit=10, extremes=1) == rows


def test_compare_says_which_side_is_better() -> None:
    assert compare(0.3, 0.1) == "better"
    assert compare(-0.4, -0.2) == "worse"  # a deeper drawdown
    assert compare(1.0, 2.0, higher_is_better=False) == "better"
    assert compare(float("nan"), 1.0) == "neutral"
    assert compare(1.0, 1.0) == "neutral"


def test_headline_cards_compare_the_traded_path_with_buy_and_hold(
    bt_fixed_result: BacktestResult,
) -> None:
    head = headline(bt_fixed_result)
    cards = {card.key: card for card in head.cards}
    assert list(cards) == [
        "net_return", "sharpe", "max_drawdown", "roc_auc", "trades", "break_even_fee"
    ]  # fmt: skip
    mine, hold = bt_fixed_result.selection.trading, bt_fixed_result.buy_and_hold
    assert cards["net_return"].value == pytest.approx(mine.total_return)
    assert cards["net_return"].reference == pytest.approx(hold.total_return)
    expected = "better" if mine.total_return > hold.total_return else "worse"
    assert cards["net_return"].status == expected
    assert cards["max_drawdown"].status == (
        "better" if mine.max_drawdown > hold.max_drawdown else "worse"
    )
    sig = bt_fixed_result.models[0].significance
    assert cards["roc_auc"].status == ("better" if sig.p_value < 0.05 else "worse")
    assert cards["trades"].status == "neutral"
    assert all(card.mark.split()[-1] in {"better", "worse", "info"} for card in head.cards)
    assert head.verdict.startswith("The fixed strategy")
    assert "Deflated Sharpe Ratio" in head.selection_line


def test_headline_card_flips_when_buy_and_hold_does_better(bt_fixed_result: BacktestResult) -> None:
    mine = bt_fixed_result.selection.trading
    hold = replace(bt_fixed_result.buy_and_hold, total_return=mine.total_return - 0.5)
    better = headline(replace(bt_fixed_result, buy_and_hold=hold)).cards[0]
    hold = replace(hold, total_return=mine.total_return + 0.5)
    worse = headline(replace(bt_fixed_result, buy_and_hold=hold)).cards[0]
    assert (better.status, worse.status) == ("better", "worse")


def test_trades_payload_lists_every_trade_of_the_headline_path(
    bt_fixed_result: BacktestResult,
) -> None:
    payload = trades_payload(bt_fixed_result)
    run_trades = bt_fixed_result.selection.run.trades
    assert len(payload["rows"]) == len(run_trades) > 0
    assert payload["statistics"]["n_trades"] == bt_fixed_result.selection.trading.n_trades
    net = sum(row["pnl_net"] for row in payload["rows"] if not row["is_open"])
    assert payload["statistics"]["net_pnl"] == pytest.approx(net)
