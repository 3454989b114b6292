"""The decision layer end to end: a random walk stays (nearly) flat, a planted edge is traded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtests.run import BacktestResult, run_backtest
from tests.factories import make_ohlcv, make_settings

N_CANDLES = 20_000


def _settings(tmp_path: Path, **decision: object):
    return make_settings(
        tmp_path,
        ml={
            "model": {"algorithm": "logreg"},
            "walk_forward": {"train_bars": 4000, "validation_bars": 500, "step_bars": 2000},
            "calibration": {"method": "sigmoid"},
        },
        strategy={"fee_rate": 0.001},
        decision=decision,
    )


def _run(candles, settings) -> BacktestResult:
    return run_backtest(candles, settings, symbol="SYN/USDT", timeframe="1h", algorithms=["logreg"])


@pytest.fixture(scope="module")
def random_walk_runs(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("rw")
    candles = make_ohlcv(N_CANDLES, seed=11, volatility=0.006)
    auto = _run(candles, _settings(tmp / "auto", mode="auto"))
    fixed = _run(candles, _settings(tmp / "fixed", mode="fixed"))
    return auto, fixed


@pytest.mark.slow
def test_auto_policy_trades_rarely_on_a_random_walk(random_walk_runs) -> None:
    auto, fixed = random_walk_runs
    cash = auto.settings.strategy.cash
    fees_auto = auto.selection.run.fees_paid / cash
    fees_fixed = fixed.selection.run.fees_paid / cash
    assert fees_auto < 0.02, f"auto paid {fees_auto:.2%} of equity in fees on noise"
    assert fees_auto < fees_fixed, "auto should pay less than the fixed 0.55/0.50 rule"
    # Significance: the deflated Sharpe finds nothing (with this many candidates)
    assert auto.selection.stats.deflated.probability < 0.95
    assert auto.selection.decision.n_trials > 1


@pytest.mark.slow
def test_random_walk_verdict_says_not_significant(random_walk_runs) -> None:
    auto, _ = random_walk_runs
    assert any("Not significant" in line for line in auto.selection.stats.verdict)


@pytest.fixture(scope="module")
def planted_edge_run(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    rng = np.random.default_rng(5)
    noise = rng.normal(0.0, 0.006, N_CANDLES)
    returns = np.empty(N_CANDLES)
    returns[0] = noise[0]
    for t in range(1, N_CANDLES):  # AR(1) returns, phi = 0.3: a strong, learnable edge
        returns[t] = 0.3 * returns[t - 1] + noise[t]
    candles = make_ohlcv(N_CANDLES, seed=5, log_returns=returns, volatility=0.006)
    return _run(candles, _settings(tmp_path_factory.mktemp("ar"), mode="auto"))


@pytest.mark.slow
def test_auto_policy_beats_flat_and_buy_and_hold_on_a_planted_edge(planted_edge_run) -> None:
    selection = planted_edge_run.selection
    net = selection.trading.total_return
    assert net > 0.0, "auto must beat staying flat net of 10 bps"
    assert net > planted_edge_run.buy_and_hold.total_return
    traded = [f for f in selection.stats.folds if f.candidate != "stay flat"]
    assert traded, "some fold must have chosen a trading policy"
    assert selection.engine_gap < 1e-6


@pytest.mark.slow
def test_chosen_policies_never_depend_on_their_own_test_window(tmp_path: Path) -> None:
    """Canary: crash every price (hence every label and feature) inside the first test window
    that trades; the policy chosen for that window and for the ones before it must not change.
    (A selector that peeks at its window sees the crash and drops its long policy.)"""
    candles = make_ohlcv(12_000, seed=21, volatility=0.006)
    loose = {"mode": "auto", "min_t_stat": 0.0, "min_trades": 1, "deflate_evidence": False}
    before = _run(candles, _settings(tmp_path / "a", **loose))
    choices = before.selection.decision.choices
    traded = [c for c in choices if not before.selection.decision.chosen(c).policy.stay_flat]
    assert traded, "the canary needs a window that trades"
    target = traded[0]
    window = before.candles.index[target.start : target.stop]
    changed = candles.copy()
    crash = np.exp(-0.01 * np.arange(1, len(window) + 1))  # -1 % per candle, every candle
    for column in ("open", "high", "low", "close"):
        changed.loc[window, column] = changed.loc[window, column].to_numpy() * crash
    after = _run(changed, _settings(tmp_path / "b", **loose))
    upto = choices.index(target) + 1
    labels = [before.selection.decision.chosen(c).label for c in choices[:upto]]
    new_choices = after.selection.decision.choices[:upto]
    assert [after.selection.decision.chosen(c).label for c in new_choices] == labels
