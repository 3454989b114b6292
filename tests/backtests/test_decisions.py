"""backtests.decisions: fixed and nested decisions over probability streams, without peeking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.decisions import ProbabilityStream, decide, fold_windows
from core.settings import DecisionPolicy, Settings
from ml.decision import positions_from_proba
from ml.policy_search import policy_grid
from tests.factories import make_ohlcv, make_settings

N_CANDLES, FOLD_BARS = 6000, 1000


def _ar_candles(seed: int = 5, *, phi: float = 0.3) -> pd.DataFrame:
    """Candles whose hourly log returns follow an AR(1): the last return predicts the next."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.01, N_CANDLES)
    returns = np.empty(N_CANDLES)
    returns[0] = noise[0]
    for t in range(1, N_CANDLES):
        returns[t] = phi * returns[t - 1] + noise[t]
    return make_ohlcv(N_CANDLES, seed=seed, log_returns=returns)


def _streams(candles: pd.DataFrame) -> list[ProbabilityStream]:
    """An informative past-only stream (the last return, squashed) and a noise stream."""
    last_return = np.log(candles["close"]).diff().fillna(0.0)
    informative = (0.5 + 0.5 * np.tanh(30 * last_return)).rename("proba_up")
    noise = pd.Series(np.random.default_rng(1).uniform(0.3, 0.7, len(candles)), candles.index)
    return [
        ProbabilityStream("ar", "logreg", 1, informative),
        ProbabilityStream("noise", "logreg", 1, noise),
    ]


def _windows(candles: pd.DataFrame) -> list[tuple[int, int, int]]:
    index = pd.DatetimeIndex(candles.index)
    bounds = [
        (k + 1, index[k * FOLD_BARS], index[(k + 1) * FOLD_BARS - 1])
        for k in range(N_CANDLES // FOLD_BARS)
    ]
    return fold_windows(index, bounds)


def _settings(**decision) -> Settings:
    return make_settings(None, strategy={"fee_rate": 0.0002}, decision=decision)


def test_fold_windows_are_row_ranges_of_the_tested_candles():
    candles = make_ohlcv(10)
    index = pd.DatetimeIndex(candles.index)
    bounds = [(1, index[0], index[3]), (2, index[4], index[9])]
    assert fold_windows(index, bounds) == [(1, 0, 4), (2, 4, 10)]


def test_decide_fixed_trades_the_configured_policy_on_the_first_stream():
    candles = _ar_candles()
    policy = {"entry_threshold": 0.56, "exit_threshold": 0.5, "min_hold_bars": 3}
    settings = _settings(mode="fixed", policy=policy)
    outcome = decide(candles, _streams(candles), _windows(candles), settings)
    expected = positions_from_proba(_streams(candles)[0].proba_up, DecisionPolicy(**policy))
    np.testing.assert_array_equal(outcome.side, expected.side)
    np.testing.assert_array_equal(outcome.size, expected.size)
    assert outcome.n_trials == 1 and outcome.candidates[0].stream == "ar"
    assert all(c.reason == "fixed policy" for c in outcome.choices)


def test_decide_auto_chooses_the_informative_stream_after_the_first_window():
    candles = _ar_candles()
    settings = _settings(mode="auto")
    outcome = decide(candles, _streams(candles), _windows(candles), settings)
    grid = policy_grid(settings.decision.grid)
    assert outcome.n_trials == 1 + 2 * (len(grid) - 1)  # flat once, then each stream x policy
    assert outcome.candidates[0].policy.stay_flat
    first, *later = outcome.choices
    assert first.candidate == 0 and (outcome.side[first.start : first.stop] == 0).all()
    assert all(outcome.chosen(c).stream == "ar" for c in later)
    assert (outcome.returns.log_net[:, 0] == 0).all()  # flat earns and pays nothing
    traded = np.concatenate([outcome.returns.log_net[c.start : c.stop, c.candidate] for c in later])
    assert traded.sum() > 0.5  # the planted AR(1) edge pays after costs


def test_decide_never_reads_prices_or_probabilities_inside_a_test_window():
    """The canary of issue 10: change every price and probability inside a test window; the
    choice of that window and of every earlier one, and the path before it, do not move."""
    candles = _ar_candles()
    streams, windows = _streams(candles), _windows(candles)
    settings = _settings(mode="auto")
    before = decide(candles, streams, windows, settings)
    assert {before.chosen(c).stream for c in before.choices} == {"flat", "ar"}
    rng = np.random.default_rng(0)
    for k, (_, start, stop) in enumerate(windows):
        rows = slice(start, stop)
        changed = candles.copy()
        for column in ("open", "high", "low", "close"):
            changed.iloc[rows, changed.columns.get_loc(column)] = rng.uniform(
                1.0, 1e6, stop - start
            )
        canary = []
        for s in streams:  # the noise stream becomes a perfect oracle of the window
            proba = s.proba_up.copy()
            up = changed["close"].shift(-1) > changed["close"]
            proba.iloc[rows] = np.where(up.iloc[rows], 0.99, 0.01)
            canary.append(ProbabilityStream(s.name, s.algorithm, s.horizon_bars, proba))
        after = decide(changed, canary, windows, settings)
        assert after.choices[: k + 1] == before.choices[: k + 1], f"window {k} moved"
        np.testing.assert_array_equal(after.side[:start], before.side[:start])
        np.testing.assert_array_equal(after.size[:start], before.size[:start])
        if k + 1 < len(windows):  # the canary has teeth: a later choice may see it
            assert (
                after.returns.log_net[start:stop].std() > before.returns.log_net[start:stop].std()
            )


@pytest.mark.parametrize("fee_rate", [0.0, 0.001])
def test_decide_scores_candidates_net_of_the_configured_costs(fee_rate):
    candles = _ar_candles()
    settings = make_settings(
        None, strategy={"fee_rate": fee_rate, "slippage_bps": 3.0}, decision={"mode": "auto"}
    )
    outcome = decide(candles, _streams(candles), _windows(candles), settings)
    cost = outcome.returns.log_gross - outcome.returns.log_net
    assert (cost >= -1e-15).all() and cost.sum() > 0  # slippage alone already costs
