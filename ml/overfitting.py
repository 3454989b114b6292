"""Selection-aware statistics: Sharpe, Sortino, deflated Sharpe, PBO by CSCV, Sharpe-gap CIs."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
EULER_GAMMA = 0.5772156649015329
# A variance below this share of the mean square (|Sharpe| above ~1e6) is rounding noise of a
# constant series: such a series has zero variance and Sharpe 0, like "stay flat".
_DEGENERATE_VARIANCE = 1e-12
_MAX_COMBINATIONS = 1_000_000  # C(22, 11) = 705,432 is the largest n_blocks allowed
_SPLIT_CHUNK = 2048  # combinations evaluated at once (bounds memory at about 3 MB per candidate)
_MAX_DRAWS = 1_000_000  # bootstrap block starts drawn at once


@dataclass(frozen=True, slots=True)
class DeflatedSharpe:
    """Deflated Sharpe Ratio of the chosen returns; every ratio is per period, not annualised."""

    sharpe: float  # per-period Sharpe of the chosen returns (mean / std, ddof=1)
    expected_max_sharpe: float  # SR0: expected best Sharpe of n_trials skill-free candidates
    probability: float  # DSR = P(true Sharpe > SR0); with n_trials == 1 the PSR against 0
    n_trials: int
    sharpe_variance: float  # V, variance of the candidates' per-period Sharpe ratios
    skewness: float
    kurtosis: float  # not excess (normal = 3)
    n_observations: int


@dataclass(frozen=True, slots=True, eq=False)
class BacktestOverfitting:
    """Probability of Backtest Overfitting by CSCV; arrays hold one value per combination.

    Combinations are in `itertools.combinations(range(n_blocks), n_blocks // 2)` order (the
    in-sample blocks). `performance_degradation` is the mean over combinations of (out-of-sample
    Sharpe - in-sample Sharpe) of the in-sample best candidate: per period, negative when the
    winner fades out of sample. `probability_of_loss` is the share of combinations where that
    candidate's out-of-sample Sharpe is below 0.
    """

    probability: float  # PBO: share of combinations whose logit <= 0
    logits: FloatArray
    n_combinations: int
    n_blocks: int
    n_candidates: int
    performance_degradation: float
    probability_of_loss: float
    in_sample_sharpe: FloatArray  # of the in-sample best candidate
    out_of_sample_sharpe: FloatArray  # of the same candidate
    block_bars: int  # rows per block
    dropped_rows: int  # leading rows dropped so that the blocks are equal


@dataclass(frozen=True, slots=True)
class SharpeDifference:
    """Paired circular block-bootstrap interval of per-period Sharpe(a) - Sharpe(b)."""

    difference: float  # on the original sample
    low: float
    high: float
    confidence: float
    p_value: float  # one-sided: share of bootstrap differences <= 0 (small = A really beats B)
    n_resamples: int
    block_bars: int


def _as_returns(returns: npt.ArrayLike, *, name: str = "returns") -> FloatArray:
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(
            f"{name} must be one-dimensional (one return per period), got shape {values.shape}"
        )
    _check_finite(values, name)
    return values


BLOCK_ROWS = 65_536
"""Rows per block of the column statistics: temporaries of one block, not of the T x N matrix."""

RowBlocks = Callable[[int, int], FloatArray]
"""`rows(start, stop)` -> rows [start, stop) of a T x N matrix (a view, or computed on demand)."""


def column_mean_var(
    rows: RowBlocks, n_rows: int, n_columns: int, *, ddof: int = 0
) -> tuple[FloatArray, FloatArray]:
    """Mean and variance of each column of a T x N matrix read in row blocks of `BLOCK_ROWS`.

    Two passes like `np.var` (the mean, then the squared deviations from it), so the values
    equal numpy's exactly up to `BLOCK_ROWS` rows and to rounding beyond.

    >>> matrix = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])
    >>> [v.tolist() for v in column_mean_var(lambda a, b: matrix[a:b], 3, 2, ddof=1)]
    [[3.0, 2.0], [4.0, 0.0]]
    """
    total = np.zeros(n_columns)
    for start in range(0, n_rows, BLOCK_ROWS):
        total += rows(start, min(start + BLOCK_ROWS, n_rows)).sum(axis=0)
    mean = total / n_rows
    squares = np.zeros(n_columns)
    for start in range(0, n_rows, BLOCK_ROWS):
        squares += np.square(rows(start, min(start + BLOCK_ROWS, n_rows)) - mean).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mean, squares / (n_rows - ddof)


def matrix_rows(matrix: FloatArray) -> RowBlocks:
    """`RowBlocks` of a matrix in memory (views, no copies)."""
    return lambda start, stop: matrix[start:stop]


def _check_finite(values: FloatArray, name: str) -> None:
    flat = values.reshape(-1)  # a view for the contiguous matrices checked here
    finite = True
    for start in range(0, flat.size, BLOCK_ROWS * 64):
        finite = finite and bool(np.isfinite(flat[start : start + BLOCK_ROWS * 64]).all())
    if finite:
        return
    bad = np.flatnonzero(~np.isfinite(flat))
    if bad.size:
        raise ValueError(
            f"{name} holds {bad.size} NaN/inf value(s), the first at flat position {bad[0]}; "
            "fill or drop them (a period without a position returns 0.0)"
        )


def _sharpe_from_moments(
    mean: FloatArray | float, variance: FloatArray | float
) -> FloatArray | float:
    """mean / sqrt(variance), 0.0 where the variance is zero or rounding noise (see top)."""
    mean, variance = np.asarray(mean, dtype=np.float64), np.asarray(variance, dtype=np.float64)
    degenerate = variance <= _DEGENERATE_VARIANCE * (variance + mean**2)
    sharpe = np.where(degenerate, 0.0, mean / np.sqrt(np.where(degenerate, 1.0, variance)))
    return float(sharpe) if sharpe.ndim == 0 else sharpe


def sharpe_ratio(returns: npt.ArrayLike) -> float:
    """Per-period Sharpe ratio mean / std (ddof=1); 0.0 with zero variance or < 2 observations.

    No risk-free rate and no annualisation: multiply by sqrt(periods per year) to annualise.

    >>> round(sharpe_ratio([0.01, -0.02, 0.03, 0.0]), 6)
    0.240192
    >>> sharpe_ratio([0.0, 0.0, 0.0]), sharpe_ratio([0.05])
    (0.0, 0.0)
    """
    values = _as_returns(returns)
    if values.size < 2:
        return 0.0
    return float(_sharpe_from_moments(values.mean(), values.var(ddof=1)))


def sharpe_ratios(returns: npt.ArrayLike) -> FloatArray:
    """Per-period Sharpe ratio of each column of a T x N matrix (same rules as `sharpe_ratio`).

    `np.var(sharpe_ratios(matrix), ddof=1)` is the V that `deflated_sharpe_ratio` wants.
    """
    matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"returns must be a T x N matrix (rows = periods), got {matrix.shape}")
    _check_finite(matrix, "returns")
    if matrix.shape[0] < 2:
        return np.zeros(matrix.shape[1])
    mean, variance = column_mean_var(matrix_rows(matrix), *matrix.shape, ddof=1)
    return np.asarray(_sharpe_from_moments(mean, variance))


def sortino_ratio(returns: npt.ArrayLike) -> float:
    """Per-period Sortino ratio: mean / downside deviation below 0.

    The downside deviation is sqrt(mean(min(r, 0)^2)) over all periods (Sortino & Price 1994,
    target 0). Without any negative return it is inf for a positive mean and 0.0 otherwise;
    fewer than 2 observations give 0.0.

    >>> round(sortino_ratio([0.02, -0.01, 0.03, -0.02]), 6)
    0.447214
    >>> sortino_ratio([0.01, 0.02]), sortino_ratio([0.0, 0.0])
    (inf, 0.0)
    """
    values = _as_returns(returns)
    if values.size < 2:
        return 0.0
    mean = float(values.mean())
    downside = math.sqrt(float(np.mean(np.minimum(values, 0.0) ** 2)))
    if downside == 0.0:
        return math.inf if mean > 0.0 else 0.0
    return mean / downside


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0, the expected best per-period Sharpe of `n_trials` candidates without skill.

    Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", eq. for E[max SR]:
    sqrt(V) * ((1 - e) * Z(1 - 1/N) + e * Z(1 - 1/(N * exp(1)))), e = Euler-Mascheroni.

    >>> expected_max_sharpe(1, 0.04)
    0.0
    >>> round(expected_max_sharpe(100, 0.01), 6)
    0.25306
    """
    if isinstance(n_trials, bool) or int(n_trials) != n_trials or n_trials < 1:
        raise ValueError(f"n_trials must be a whole number >= 1 (candidates tried), got {n_trials}")
    if not (math.isfinite(sharpe_variance) and sharpe_variance >= 0.0):
        raise ValueError(f"sharpe_variance must be finite and >= 0, got {sharpe_variance}")
    if n_trials == 1:
        return 0.0
    quantiles = norm.ppf([1.0 - 1.0 / n_trials, 1.0 - 1.0 / (n_trials * math.e)])
    expected_z = (1.0 - EULER_GAMMA) * quantiles[0] + EULER_GAMMA * quantiles[1]
    return float(math.sqrt(sharpe_variance) * expected_z)


def _higher_moments(values: FloatArray) -> tuple[float, float]:
    """Population skewness and kurtosis (not excess); (0, 3) for a zero-variance series.

    Population (biased) moments obey Pearson's g4 >= 1 + g3^2, which keeps the PSR variance
    term 1 - g3*SR + (g4-1)/4*SR^2 >= (1 - g3*SR/2)^2 >= 0 for every SR.
    """
    mean = float(values.mean())
    centred = values - mean
    variance = float(np.mean(centred**2))
    if variance <= _DEGENERATE_VARIANCE * (variance + mean**2):
        return 0.0, 3.0
    standardised = centred / math.sqrt(variance)
    return float(np.mean(standardised**3)), float(np.mean(standardised**4))


def _sharpe_z_score(
    sharpe: float, benchmark: float, n_observations: int, skewness: float, kurtosis: float
) -> float:
    """(SR - SR*) * sqrt(T - 1) / sqrt(1 - g3*SR + (g4-1)/4*SR^2) (Bailey & Lopez de Prado 2012)."""
    variance_term = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if variance_term <= 1e-12:
        # Only a (near) two-valued series with SR = 2/g3 reaches 0 (see _higher_moments); fall
        # back to the normal-returns value 1 + SR^2/2 rather than divide by rounding noise.
        logger.warning("PSR variance term %.3g <= 0; using the normal-returns value", variance_term)
        variance_term = 1.0 + sharpe**2 / 2.0
    return (sharpe - benchmark) * math.sqrt(n_observations - 1) / math.sqrt(variance_term)


def _checked_returns(returns: npt.ArrayLike) -> FloatArray:
    values = _as_returns(returns)
    if values.size < 2:
        raise ValueError(f"the (deflated) Sharpe test needs >= 2 returns, got {values.size}")
    return values


def probabilistic_sharpe_ratio(returns: npt.ArrayLike, *, benchmark_sharpe: float = 0.0) -> float:
    """PSR: probability that the true per-period Sharpe exceeds `benchmark_sharpe`.

    Accounts for the sample length, skewness and fat tails of `returns` (Bailey & Lopez de
    Prado 2012, "The Sharpe Ratio Efficient Frontier"). A zero-variance series (never trades)
    has Sharpe 0 and gives 0.5 against a benchmark of 0: no evidence either way.

    >>> round(probabilistic_sharpe_ratio([0.01, -0.02, 0.03, 0.0, 0.02]), 4)
    0.7755
    """
    values = _checked_returns(returns)
    skewness, kurtosis = _higher_moments(values)
    z = _sharpe_z_score(sharpe_ratio(values), benchmark_sharpe, values.size, skewness, kurtosis)
    return float(norm.cdf(z))


def deflated_sharpe_ratio(
    returns: npt.ArrayLike, *, n_trials: int, sharpe_variance: float
) -> DeflatedSharpe:
    """Deflated Sharpe Ratio of the chosen returns after `n_trials` candidates were tried.

    The PSR against SR0 = `expected_max_sharpe(n_trials, sharpe_variance)` (Bailey & Lopez de
    Prado 2014): the probability that the true Sharpe beats the best one luck alone would give.
    `sharpe_variance` is the variance of all candidates' per-period Sharpe ratios (see
    `sharpe_ratios`); with `n_trials == 1` it is ignored and DSR is the PSR against 0.
    """
    values = _checked_returns(returns)
    benchmark = expected_max_sharpe(n_trials, sharpe_variance)
    skewness, kurtosis = _higher_moments(values)
    sharpe = sharpe_ratio(values)
    z = _sharpe_z_score(sharpe, benchmark, values.size, skewness, kurtosis)
    return DeflatedSharpe(
        sharpe=sharpe,
        expected_max_sharpe=benchmark,
        probability=float(norm.cdf(z)),
        n_trials=int(n_trials),
        sharpe_variance=float(sharpe_variance),
        skewness=skewness,
        kurtosis=kurtosis,
        n_observations=int(values.size),
    )


def _checked_matrix(returns: npt.ArrayLike, n_blocks: int) -> FloatArray:
    matrix = np.asarray(returns, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"returns must be a T x N matrix (rows = periods), got {matrix.shape}")
    _check_finite(matrix, "returns")
    n_rows, n_candidates = matrix.shape
    if n_candidates < 2:
        raise ValueError(f"PBO compares candidates: need N >= 2 columns, got {n_candidates}")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"n_blocks must be even and >= 2 (half in-sample), got {n_blocks}")
    if math.comb(n_blocks, n_blocks // 2) > _MAX_COMBINATIONS:
        raise ValueError(f"n_blocks={n_blocks} gives too many combinations; use n_blocks <= 22")
    if n_rows < n_blocks:
        raise ValueError(f"need at least one row per block: T={n_rows} < n_blocks={n_blocks}")
    return matrix


def _sharpe_from_sums(sums: FloatArray, sums_sq: FloatArray, n_rows: int) -> FloatArray:
    if n_rows < 2:
        return np.zeros_like(sums)
    mean = sums / n_rows
    variance = np.maximum(sums_sq - sums * mean, 0.0) / (n_rows - 1)
    return np.asarray(_sharpe_from_moments(mean, variance))


def _split_sums(block_values: FloatArray, in_sample: npt.NDArray[np.intp]) -> FloatArray:
    # Added block by block instead of `mask @ block_values`: BLAS does not promise the same
    # summation order for every column, and identical candidates must tie exactly.
    sums = block_values[in_sample[:, 0]].copy()
    for position in range(1, in_sample.shape[1]):
        sums += block_values[in_sample[:, position]]
    return sums


def _evaluate_splits(
    in_sample: npt.NDArray[np.intp], block_sums: FloatArray, block_sums_sq: FloatArray, n_half: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Logit, in-sample and out-of-sample Sharpe of the in-sample best, per combination."""
    is_sums, is_sums_sq = _split_sums(block_sums, in_sample), _split_sums(block_sums_sq, in_sample)
    is_sharpe = _sharpe_from_sums(is_sums, is_sums_sq, n_half)
    oos_sharpe = _sharpe_from_sums(
        block_sums.sum(axis=0) - is_sums, block_sums_sq.sum(axis=0) - is_sums_sq, n_half
    )
    rows = np.arange(in_sample.shape[0])
    best = np.argmax(is_sharpe, axis=1)  # in-sample ties: the first column wins
    chosen = oos_sharpe[rows, best][:, None]
    # rank 1 = worst .. N = best out of sample, ties averaged (as scipy.stats.rankdata)
    rank = np.sum(oos_sharpe < chosen, axis=1) + (np.sum(oos_sharpe == chosen, axis=1) + 1) / 2
    relative_rank = rank / (oos_sharpe.shape[1] + 1)
    logits = np.log(relative_rank / (1.0 - relative_rank))
    return logits, is_sharpe[rows, best], chosen[:, 0]


def probability_of_backtest_overfitting(
    returns: npt.ArrayLike, *, n_blocks: int = 16
) -> BacktestOverfitting:
    """PBO by combinatorially symmetric cross-validation (Bailey, Borwein, Lopez de Prado & Zhu).

    `returns` is T x N (rows = periods, columns = candidates). The rows are cut into `n_blocks`
    equal blocks; the T % n_blocks leading (oldest) rows are dropped. For each of the
    C(S, S/2) choices of in-sample blocks the in-sample best candidate (per-period Sharpe) gets
    its out-of-sample relative rank w = rank / (N + 1) and logit ln(w / (1 - w)); PBO is the
    share of logits <= 0 (the winner does no better than the out-of-sample median). Source:
    "The Probability of Backtest Overfitting", J. of Computational Finance 20(4), 2017 (SSRN 2015).

    Ties: identical candidates carry no information, so choosing among them lands exactly on
    the median (w = 1/2, logit 0) and counts as overfit: N identical candidates give PBO = 1.
    Zero-variance candidates ("stay flat") have Sharpe 0 and tie with each other.

    Raises:
        ValueError: odd or too large `n_blocks`, T < `n_blocks`, N < 2, NaN/inf returns.
    """
    matrix = _checked_matrix(returns, n_blocks)
    n_rows, n_candidates = matrix.shape
    block_bars, dropped_rows = n_rows // n_blocks, n_rows % n_blocks
    if dropped_rows:
        logger.debug("PBO drops the first %d of %d rows to make equal blocks", dropped_rows, n_rows)
    blocks = matrix[dropped_rows:].reshape(n_blocks, block_bars, n_candidates)
    block_sums = blocks.sum(axis=1)
    block_sums_sq = np.stack([np.square(block).sum(axis=0) for block in blocks])
    combinations = itertools.combinations(range(n_blocks), n_blocks // 2)
    in_sample = np.array(list(combinations), dtype=np.intp)
    n_half = block_bars * (n_blocks // 2)
    parts = [
        _evaluate_splits(in_sample[start : start + _SPLIT_CHUNK], block_sums, block_sums_sq, n_half)
        for start in range(0, in_sample.shape[0], _SPLIT_CHUNK)
    ]
    logits, is_sharpe, oos_sharpe = (np.concatenate(column) for column in zip(*parts, strict=True))
    return BacktestOverfitting(
        probability=float(np.mean(logits <= 0.0)),
        logits=logits,
        n_combinations=int(logits.size),
        n_blocks=n_blocks,
        n_candidates=n_candidates,
        performance_degradation=float(np.mean(oos_sharpe - is_sharpe)),
        probability_of_loss=float(np.mean(oos_sharpe < 0.0)),
        in_sample_sharpe=is_sharpe,
        out_of_sample_sharpe=oos_sharpe,
        block_bars=block_bars,
        dropped_rows=dropped_rows,
    )


def _check_bootstrap_options(
    n_rows: int, *, block_bars: int, n_resamples: int, confidence: float
) -> None:
    if n_rows < 2:
        raise ValueError(f"the Sharpe difference needs >= 2 paired returns, got {n_rows}")
    if not 1 <= block_bars <= n_rows:
        raise ValueError(f"block_bars must be in [1, {n_rows}] (series length), got {block_bars}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}")


def _circular_block_sums(
    centred: FloatArray, block_bars: int
) -> tuple[FloatArray, FloatArray, int]:
    """Sums of x and x^2 of the circular block starting at each row, per column.

    Returns (full, last, n_draws): `full[m, i]` sums moment m over `block_bars` rows from row
    i (wrapping around the end), `last[m, i]` over the cut last block that makes the length T.
    Moments are x of every column, then x^2 of every column. Differences of cumulative sums of
    the centred series (centring keeps them accurate) give all blocks in one pass.
    """
    n_rows = centred.shape[0]
    moments = np.concatenate([centred, centred**2], axis=1)
    wrapped = np.concatenate([moments, moments[: block_bars - 1]])
    cumulative = np.concatenate([np.zeros((1, moments.shape[1])), np.cumsum(wrapped, axis=0)])
    n_draws = -(-n_rows // block_bars)
    last_bars = n_rows - (n_draws - 1) * block_bars
    rows = np.arange(n_rows)
    full = cumulative[rows + block_bars] - cumulative[rows]
    last = cumulative[rows + last_bars] - cumulative[rows]
    return np.ascontiguousarray(full.T), np.ascontiguousarray(last.T), n_draws


def _bootstrap_sharpes(
    values: FloatArray, *, block_bars: int, n_resamples: int, rng: np.random.Generator
) -> FloatArray:
    """Per-period Sharpe of each column of `values` in each circular block resample.

    Circular blocks (Politis & Romano 1992) wrap around the end, so every period is drawn
    equally often. A resample is never built row by row: its sums are gathered per block.
    """
    n_rows, n_columns = values.shape
    means = values.mean(axis=0)
    full, last, n_draws = _circular_block_sums(values - means, block_bars)
    sharpes = np.empty((n_resamples, n_columns))
    chunk = max(1, _MAX_DRAWS // n_draws)
    for first in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - first)
        starts = rng.integers(0, n_rows, size=(size, n_draws))
        # one 1-D gather per moment is far faster than gathering rows of a 2-D array
        totals = np.stack(
            [
                full[m][starts[:, :-1]].sum(axis=1) + last[m][starts[:, -1]]
                for m in range(len(full))
            ],
            axis=1,
        )
        sums, sums_sq = totals[:, :n_columns], totals[:, n_columns:]
        variance = np.maximum(sums_sq - sums**2 / n_rows, 0.0) / (n_rows - 1)
        sharpes[first : first + size] = _sharpe_from_moments(means + sums / n_rows, variance)
    return sharpes


def sharpe_difference(
    returns_a: npt.ArrayLike,
    returns_b: npt.ArrayLike,
    *,
    block_bars: int,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
) -> SharpeDifference:
    """Per-period Sharpe(a) - Sharpe(b) with a paired circular block-bootstrap percentile CI.

    Both series are resampled with the same blocks (paired), keeping their correlation and,
    within blocks of `block_bars` periods, their serial dependence. `p_value` is the share of
    resampled differences <= 0 (0.0 means below 1 / n_resamples).
    """
    a, b = _as_returns(returns_a, name="returns_a"), _as_returns(returns_b, name="returns_b")
    if a.size != b.size:
        raise ValueError(f"paired series differ in length: returns_a {a.size}, returns_b {b.size}")
    _check_bootstrap_options(
        a.size, block_bars=block_bars, n_resamples=n_resamples, confidence=confidence
    )
    rng = np.random.default_rng(seed)
    sharpes = _bootstrap_sharpes(
        np.column_stack([a, b]), block_bars=block_bars, n_resamples=n_resamples, rng=rng
    )
    differences = sharpes[:, 0] - sharpes[:, 1]
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(differences, [tail, 1.0 - tail])
    return SharpeDifference(
        difference=sharpe_ratio(a) - sharpe_ratio(b),
        low=float(low),
        high=float(high),
        confidence=float(confidence),
        p_value=float(np.mean(differences <= 0.0)),
        n_resamples=int(n_resamples),
        block_bars=int(block_bars),
    )


def trial_sharpe_variance(returns: npt.ArrayLike) -> float:
    """V of the Deflated Sharpe Ratio: the variance of the per-period Sharpe ratios of the
    candidates that took any risk (columns with returns that vary). Candidates that never
    traded (and duplicates of "stay flat") all sit at exactly 0 and would shrink V, and so the
    luck benchmark SR0, making the deflation too lenient; they still count in N.

    >>> round(trial_sharpe_variance(np.array([[0.0, 0.01, -0.01], [0.0, 0.02, 0.01],
    ...                                        [0.0, 0.0, 0.02]])), 4)
    0.1588
    """
    matrix = np.asarray(returns, dtype=np.float64)
    traded = np.sqrt(column_mean_var(matrix_rows(matrix), *matrix.shape)[1]) > 0
    sharpes = sharpe_ratios(matrix)[traded] if traded.any() else np.zeros(0)
    return float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
