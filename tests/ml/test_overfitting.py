"""Tests of the selection-aware statistics against hand computations and brute-force loops."""

from __future__ import annotations

import itertools
import logging
import math
import statistics

import numpy as np
import pytest
from scipy import stats
from scipy.stats import norm

from ml.overfitting import (
    _sharpe_z_score,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_difference,
    sharpe_ratio,
    sharpe_ratios,
    sortino_ratio,
)

RETURNS = np.array(
    [0.012, -0.007, 0.021, 0.004, -0.015, 0.018, 0.009, -0.003, 0.026, -0.011, 0.007, 0.014]
)


def hand_sharpe(values) -> float:
    """mean / sample std with the statistics module; 0.0 when the std is 0."""
    values = [float(v) for v in values]
    std = statistics.stdev(values)
    return statistics.fmean(values) / std if std > 0 else 0.0


def hand_psr(values, benchmark: float) -> float:
    """PSR written out from Bailey & Lopez de Prado with scipy's population moments."""
    sr = hand_sharpe(values)
    g3 = stats.skew(values, bias=True)
    g4 = stats.kurtosis(values, fisher=False, bias=True)
    denominator = math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(norm.cdf((sr - benchmark) * math.sqrt(len(values) - 1) / denominator))


def hand_sr0(n_trials: int, variance: float) -> float:
    gamma = np.euler_gamma
    z1 = norm.ppf(1 - 1 / n_trials)
    z2 = norm.ppf(1 - 1 / (n_trials * math.e))
    return math.sqrt(variance) * ((1 - gamma) * z1 + gamma * z2)


def test_sharpe_ratio_matches_hand_computation() -> None:
    assert sharpe_ratio(RETURNS) == pytest.approx(hand_sharpe(RETURNS), rel=1e-12)
    assert sharpe_ratio(list(RETURNS)) == pytest.approx(hand_sharpe(RETURNS), rel=1e-12)


def test_sharpe_ratio_is_zero_without_variance_or_data() -> None:
    assert sharpe_ratio(np.zeros(50)) == 0.0
    assert sharpe_ratio(np.full(50, 0.001)) == 0.0  # constant: rounding noise is not variance
    assert sharpe_ratio([0.03]) == 0.0
    assert sharpe_ratio([]) == 0.0


def test_sharpe_ratios_match_sharpe_ratio_per_column() -> None:
    matrix = np.random.default_rng(3).normal(0.001, 0.01, size=(300, 5))
    matrix[:, 2] = 0.0
    expected = [sharpe_ratio(matrix[:, j]) for j in range(5)]
    np.testing.assert_allclose(sharpe_ratios(matrix), expected, rtol=1e-12)
    assert sharpe_ratios(matrix)[2] == 0.0


def test_sortino_ratio_matches_hand_computation() -> None:
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in RETURNS) / len(RETURNS))
    assert sortino_ratio(RETURNS) == pytest.approx(statistics.fmean(RETURNS) / downside)


def test_sortino_ratio_without_downside() -> None:
    assert sortino_ratio([0.01, 0.02, 0.0]) == math.inf
    assert sortino_ratio(np.zeros(10)) == 0.0
    assert sortino_ratio([-0.01]) == 0.0


@pytest.mark.parametrize("bad", [[0.01, math.nan, 0.02], [0.01, math.inf], [[0.01, 0.02]]])
def test_ratios_reject_bad_returns(bad) -> None:
    with pytest.raises(ValueError, match="returns"):
        sharpe_ratio(bad)
    with pytest.raises(ValueError, match="returns"):
        sortino_ratio(bad)


def test_expected_max_sharpe_matches_formula() -> None:
    assert expected_max_sharpe(1, 0.5) == 0.0
    for n_trials, variance in [(2, 0.01), (25, 0.02), (1000, 0.0004)]:
        assert expected_max_sharpe(n_trials, variance) == pytest.approx(
            hand_sr0(n_trials, variance), rel=1e-12
        )
    assert expected_max_sharpe(50, 0.0) == 0.0


@pytest.mark.parametrize(
    ("n_trials", "variance", "match"),
    [(0, 0.1, "n_trials"), (2.5, 0.1, "n_trials"), (True, 0.1, "n_trials"), (5, -0.1, "variance")],
)
def test_expected_max_sharpe_rejects_bad_input(n_trials, variance, match) -> None:
    with pytest.raises(ValueError, match=match):
        expected_max_sharpe(n_trials, variance)
    with pytest.raises(ValueError, match=match):
        deflated_sharpe_ratio(RETURNS, n_trials=n_trials, sharpe_variance=variance)


def test_probabilistic_sharpe_ratio_matches_worked_example() -> None:
    assert probabilistic_sharpe_ratio(RETURNS) == pytest.approx(hand_psr(RETURNS, 0.0), rel=1e-12)
    psr = probabilistic_sharpe_ratio(RETURNS, benchmark_sharpe=0.1)
    assert psr == pytest.approx(hand_psr(RETURNS, 0.1), rel=1e-12)


def test_deflated_sharpe_ratio_matches_worked_example() -> None:
    result = deflated_sharpe_ratio(RETURNS, n_trials=25, sharpe_variance=0.02)
    sr0 = hand_sr0(25, 0.02)
    assert result.expected_max_sharpe == pytest.approx(sr0, rel=1e-12)
    assert result.probability == pytest.approx(hand_psr(RETURNS, sr0), rel=1e-12)
    assert result.sharpe == pytest.approx(hand_sharpe(RETURNS), rel=1e-12)
    assert result.skewness == pytest.approx(stats.skew(RETURNS, bias=True), rel=1e-12)
    assert result.kurtosis == pytest.approx(stats.kurtosis(RETURNS, fisher=False), rel=1e-12)
    assert (result.n_trials, result.sharpe_variance, result.n_observations) == (25, 0.02, 12)


def test_deflated_sharpe_ratio_with_one_trial_is_the_psr() -> None:
    result = deflated_sharpe_ratio(RETURNS, n_trials=1, sharpe_variance=0.3)
    assert result.expected_max_sharpe == 0.0
    assert result.probability == pytest.approx(probabilistic_sharpe_ratio(RETURNS), rel=1e-15)


def test_deflated_sharpe_ratio_falls_with_trials_and_variance() -> None:
    returns = np.random.default_rng(1).normal(0.05, 1.0, size=2000)
    by_trials = [
        deflated_sharpe_ratio(returns, n_trials=n, sharpe_variance=0.001).probability
        for n in (1, 2, 10, 100, 1000)
    ]
    by_variance = [
        deflated_sharpe_ratio(returns, n_trials=20, sharpe_variance=v).probability
        for v in (0.0, 0.0001, 0.001, 0.01)
    ]
    assert all(a > b for a, b in itertools.pairwise(by_trials))
    assert all(a > b for a, b in itertools.pairwise(by_variance))


def test_deflated_sharpe_ratio_of_a_strong_planted_edge_is_near_one() -> None:
    returns = np.random.default_rng(2).normal(0.2, 1.0, size=5000)
    assert deflated_sharpe_ratio(returns, n_trials=100, sharpe_variance=0.001).probability > 0.999


def test_deflated_sharpe_ratio_of_the_best_noise_candidate_is_not_significant() -> None:
    candidates = np.random.default_rng(0).normal(size=(2000, 200))
    sharpes = sharpe_ratios(candidates)
    best = candidates[:, int(np.argmax(sharpes))]
    result = deflated_sharpe_ratio(best, n_trials=200, sharpe_variance=float(np.var(sharpes)))
    assert probabilistic_sharpe_ratio(best) > 0.95  # naive: "significant"
    assert result.probability < 0.9  # deflated: selection luck explains it


def test_deflated_sharpe_ratio_of_a_flat_strategy() -> None:
    result = deflated_sharpe_ratio(np.zeros(500), n_trials=10, sharpe_variance=0.001)
    assert (result.sharpe, result.skewness, result.kurtosis) == (0.0, 0.0, 3.0)
    # Sharpe 0, skew 0, kurtosis 3: the variance term is 1 and DSR = Phi(-SR0 * sqrt(T - 1))
    assert result.probability == pytest.approx(
        norm.cdf(-result.expected_max_sharpe * math.sqrt(499))
    )
    assert result.probability < 0.5
    assert probabilistic_sharpe_ratio(np.zeros(500)) == 0.5  # no evidence either way


def test_psr_variance_term_is_never_negative_with_population_moments() -> None:
    # Pearson: g4 >= 1 + g3^2, so 1 - g3*SR + (g4-1)/4*SR^2 >= (1 - g3*SR/2)^2 >= 0
    skewed = np.random.default_rng(4).lognormal(size=200)
    g3, g4 = stats.skew(skewed), stats.kurtosis(skewed, fisher=False)
    for sr in np.linspace(-5, 5, 101):
        assert 1 - g3 * sr + (g4 - 1) / 4 * sr**2 >= 0


def test_psr_variance_term_falls_back_to_normal_returns(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="ml.overfitting"):
        z = _sharpe_z_score(1.0, 0.0, 101, 2.0, 1.0)  # 1 - 2 + 0 = -1
    assert z == pytest.approx(1.0 * 10 / math.sqrt(1.5))
    assert "normal-returns" in caplog.text


@pytest.mark.parametrize("bad", [[0.01], [], [[0.01, 0.02], [0.0, 0.01]], [0.01, math.nan]])
def test_psr_and_dsr_reject_bad_returns(bad) -> None:
    with pytest.raises(ValueError, match="returns"):
        probabilistic_sharpe_ratio(bad)
    with pytest.raises(ValueError, match="returns"):
        deflated_sharpe_ratio(bad, n_trials=3, sharpe_variance=0.01)


def brute_force_cscv(matrix: np.ndarray, n_blocks: int):
    """CSCV written as plain loops: logits, in-sample and out-of-sample Sharpe of the winner."""
    n_rows, n_candidates = matrix.shape
    block = n_rows // n_blocks
    blocks = np.split(matrix[n_rows - block * n_blocks :], n_blocks)
    logits, is_best, oos_best = [], [], []
    for combo in itertools.combinations(range(n_blocks), n_blocks // 2):
        in_rows = np.vstack([blocks[i] for i in combo])
        out_rows = np.vstack([blocks[i] for i in range(n_blocks) if i not in combo])
        in_sr = [hand_sharpe(in_rows[:, j]) for j in range(n_candidates)]
        out_sr = [hand_sharpe(out_rows[:, j]) for j in range(n_candidates)]
        best = int(np.argmax(in_sr))
        w = stats.rankdata(out_sr)[best] / (n_candidates + 1)
        logits.append(math.log(w / (1 - w)))
        is_best.append(in_sr[best])
        oos_best.append(out_sr[best])
    return np.array(logits), np.array(is_best), np.array(oos_best)


@pytest.mark.parametrize("with_flat", [False, True])
def test_pbo_matches_brute_force_on_a_small_matrix(with_flat: bool) -> None:
    matrix = np.random.default_rng(5).normal(0.0, 0.01, size=(42, 3))  # 2 leading rows dropped
    if with_flat:
        matrix[:, 1] = 0.0
    result = probability_of_backtest_overfitting(matrix, n_blocks=4)
    logits, is_best, oos_best = brute_force_cscv(matrix, 4)
    assert (result.n_combinations, result.n_blocks, result.n_candidates) == (6, 4, 3)
    assert (result.block_bars, result.dropped_rows) == (10, 2)
    np.testing.assert_allclose(result.logits, logits, rtol=1e-12)
    np.testing.assert_allclose(result.in_sample_sharpe, is_best, rtol=1e-9)
    np.testing.assert_allclose(result.out_of_sample_sharpe, oos_best, rtol=1e-9)
    assert result.probability == pytest.approx(np.mean(logits <= 0))
    assert result.performance_degradation == pytest.approx(np.mean(oos_best - is_best))
    assert result.probability_of_loss == pytest.approx(np.mean(oos_best < 0))


def test_pbo_drops_the_leading_remainder_rows() -> None:
    matrix = np.random.default_rng(6).normal(size=(64, 4))
    padded = np.vstack([np.full((3, 4), 100.0), matrix])
    trimmed = probability_of_backtest_overfitting(matrix, n_blocks=8)
    result = probability_of_backtest_overfitting(padded, n_blocks=8)
    assert result.dropped_rows == 3
    np.testing.assert_array_equal(result.logits, trimmed.logits)


def test_pbo_of_identical_candidates_is_one() -> None:
    # identical candidates carry no information: the in-sample pick is always the out-of-sample
    # median (w = 1/2, logit exactly 0), which the "<= 0" rule counts as overfit
    column = np.random.default_rng(7).normal(size=(320, 1))
    result = probability_of_backtest_overfitting(np.tile(column, (1, 5)), n_blocks=16)
    assert result.n_combinations == 12_870
    assert np.all(result.logits == 0.0)
    assert result.probability == 1.0
    assert result.performance_degradation == pytest.approx(
        np.mean(result.out_of_sample_sharpe - result.in_sample_sharpe)
    )


def test_pbo_of_flat_candidates_ties_them() -> None:
    matrix = np.zeros((160, 3))
    result = probability_of_backtest_overfitting(matrix, n_blocks=8)
    assert result.probability == 1.0
    assert np.all(result.in_sample_sharpe == 0.0)


def test_pbo_of_one_dominant_candidate_is_zero() -> None:
    matrix = np.random.default_rng(8).normal(size=(1600, 10))
    matrix[:, 3] += 0.5
    result = probability_of_backtest_overfitting(matrix)
    np.testing.assert_allclose(result.logits, math.log(10))  # rank N: w = N / (N + 1)
    assert result.probability == 0.0
    assert result.probability_of_loss == 0.0


def test_pbo_of_noise_candidates_is_near_one_half() -> None:
    probabilities = [
        probability_of_backtest_overfitting(
            np.random.default_rng(seed).normal(size=(800, 10))
        ).probability
        for seed in range(20)
    ]
    assert 0.35 < np.mean(probabilities) < 0.65


@pytest.mark.parametrize(
    ("shape", "n_blocks", "match"),
    [
        ((100, 4), 5, "even"),
        ((100, 4), 0, "even"),
        ((100, 4), 24, "too many"),
        ((10, 4), 16, "T=10 < n_blocks=16"),
        ((100, 1), 16, "N >= 2"),
        ((100,), 16, "T x N"),
    ],
)
def test_pbo_rejects_bad_input(shape, n_blocks, match) -> None:
    with pytest.raises(ValueError, match=match):
        probability_of_backtest_overfitting(np.zeros(shape), n_blocks=n_blocks)


def test_pbo_rejects_nan() -> None:
    matrix = np.zeros((40, 3))
    matrix[5, 1] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        probability_of_backtest_overfitting(matrix, n_blocks=4)


def planted_pair(n_rows: int = 20_000):
    """a has true per-period Sharpe 0.05, b 0; they share a market factor (correlation 0.6)."""
    rng = np.random.default_rng(9)
    market = rng.normal(size=n_rows)
    a = 0.05 + 0.6 * market + 0.8 * rng.normal(size=n_rows)
    return a, market


def test_sharpe_difference_covers_the_planted_difference() -> None:
    a, b = planted_pair()
    result = sharpe_difference(a, b, block_bars=24)
    assert result.difference == pytest.approx(sharpe_ratio(a) - sharpe_ratio(b))
    assert result.low < 0.05 < result.high
    assert result.p_value < 0.01
    assert (result.confidence, result.n_resamples, result.block_bars) == (0.95, 1000, 24)


def test_sharpe_difference_is_reproducible_with_a_seed() -> None:
    a, b = planted_pair(2000)
    first = sharpe_difference(a, b, block_bars=10, n_resamples=200, seed=1)
    assert sharpe_difference(a, b, block_bars=10, n_resamples=200, seed=1) == first
    assert sharpe_difference(a, b, block_bars=10, n_resamples=200, seed=2).low != first.low


def test_sharpe_difference_spread_matches_iid_theory() -> None:
    # independent i.i.d. normal series: Var(SR_a - SR_b) ~ 2 / T (SR near 0)
    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(2, 4000))
    result = sharpe_difference(a, b, block_bars=1, n_resamples=2000, confidence=0.9)
    standard_error = (result.high - result.low) / (2 * norm.ppf(0.95))
    assert standard_error == pytest.approx(math.sqrt(2 / 4000), rel=0.15)


def test_sharpe_difference_with_one_block_only_rotates_the_series() -> None:
    # a circular block as long as the series is a rotation: Sharpe ratios do not change
    a, b = planted_pair(500)
    result = sharpe_difference(a, b, block_bars=500, n_resamples=50)
    assert result.low == pytest.approx(result.difference, rel=1e-9)
    assert result.high == pytest.approx(result.difference, rel=1e-9)


def test_sharpe_difference_of_identical_and_flat_series() -> None:
    a, _ = planted_pair(1000)
    same = sharpe_difference(a, a, block_bars=20, n_resamples=100)
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    flat = sharpe_difference(a, np.zeros(1000), block_bars=20, n_resamples=100)
    assert flat.difference == pytest.approx(sharpe_ratio(a))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_bars": 0}, "block_bars"),
        ({"block_bars": 101}, "block_bars"),
        ({"block_bars": 5, "n_resamples": 0}, "n_resamples"),
        ({"block_bars": 5, "confidence": 1.0}, "confidence"),
    ],
)
def test_sharpe_difference_rejects_bad_options(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        sharpe_difference(np.ones(100), np.zeros(100), **kwargs)


def test_sharpe_difference_rejects_unpaired_or_short_series() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        sharpe_difference(np.ones(100), np.zeros(99), block_bars=5)
    with pytest.raises(ValueError, match=">= 2"):
        sharpe_difference([0.01], [0.02], block_bars=1)
    with pytest.raises(ValueError, match="returns_b"):
        sharpe_difference([0.01, 0.02], [0.02, math.nan], block_bars=1)
