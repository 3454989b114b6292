"""Nested choice of a decision policy: candidates scored net of costs only on earlier data.

For every walk-forward test window, each candidate (a probability stream, e.g. one model at one
label horizon, with one policy from the grid) is scored on the out-of-sample predictions that
came strictly BEFORE the window (the earlier folds' test windows, optionally only the last
`selection_bars` of them). The best candidate that passes the evidence rule (enough trades; a
timing t-statistic, net of costs and of the market's drift, above `evidence_bar`: what the best
of that many skill-less candidates reaches by luck only with probability `evidence_alpha`,
plus `min_t_stat`; and a better objective
than staying flat) trades the window; otherwise the window stays flat. The first window has no
earlier out-of-sample predictions and therefore stays flat. Nothing of the window itself (prices,
labels, probabilities) reaches its own choice.

Candidates are scored with a vectorised return model of the fill rules (target decided at the
close of t, traded at the open of t+1, fee and slippage per side on the traded exposure). It
rebalances the exposure every candle instead of holding fixed units, a second-order difference
that is fine for ranking; the chosen path itself is then run by backtrader and the exact numpy
twin.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from core.settings import DecisionPolicy, DecisionSettings, PolicyGridSettings
from ml.decision import positions_for_policies
from ml.overfitting import BLOCK_ROWS, RowBlocks, column_mean_var, matrix_rows

logger = logging.getLogger(__name__)

FLAT_POLICY = DecisionPolicy(stay_flat=True)
_CHUNK_ROWS = 65_536  # candle rows per block of the return model's temporaries
_SPREAD_FLOOR = 1e-12  # per-candle returns are ~1e-3; spreads below this are rounding noise
FloatMatrix = npt.NDArray[np.float64]


def policy_grid(grid: PolicyGridSettings) -> list[DecisionPolicy]:
    """Every policy of the grid ("stay flat" first); exit thresholds above the entry are skipped.

    >>> grid = PolicyGridSettings(entry_threshold=(0.55,), exit_threshold=(0.5, 0.6),
    ...                           min_hold_bars=(0,), cooldown_bars=(0,))
    >>> [p.stay_flat for p in policy_grid(grid)]
    [True, False]
    """
    policies = [FLAT_POLICY]
    combos = itertools.product(
        grid.entry_threshold,
        grid.exit_threshold,
        grid.min_hold_bars,
        grid.cooldown_bars,
        grid.sizing,
        grid.allow_short,
    )
    for entry, exit_, hold, cooldown, sizing, short in combos:
        if exit_ > entry or (short and 1 - entry >= entry):
            continue
        policies.append(
            DecisionPolicy(
                entry_threshold=entry,
                exit_threshold=exit_,
                min_hold_bars=hold,
                cooldown_bars=cooldown,
                sizing=sizing,
                allow_short=short,
                short_entry_threshold=round(1 - entry, 10),
                short_exit_threshold=round(1 - exit_, 10),
            )
        )
    return policies


def describe_policy(policy: DecisionPolicy) -> str:
    """A short human label.

    >>> describe_policy(DecisionPolicy(min_hold_bars=12))
    'long >=0.55 exit <0.5 hold 12 cool 0 fixed'
    """
    if policy.stay_flat:
        return "stay flat"
    text = (
        f"long >={policy.entry_threshold:g} exit <{policy.exit_threshold:g} "
        f"hold {policy.min_hold_bars} cool {policy.cooldown_bars} {policy.sizing}"
    )
    if policy.allow_short:
        text += f" short <={policy.short_entry_threshold:g}"
    return text


@dataclass(frozen=True, slots=True)
class CandidateReturns:
    """Per-candle results of N candidates over T candles (rows = candles, columns = candidates).

    Attributes:
        log_net: log growth of equity in each candle, after fees and slippage.
        log_gross: the same before costs.
        entries: True where a candidate decides a new position (a trade starts).
        exposure: signed fraction of equity targeted at each close.
        market: close-to-close return of each candle (what holding earns), shape (T,).
    """

    log_net: FloatMatrix
    log_gross: FloatMatrix
    entries: npt.NDArray[np.bool_]
    exposure: FloatMatrix
    market: npt.NDArray[np.float64]


def candidate_returns(
    side: npt.NDArray[np.int8],
    size: FloatMatrix,
    *,
    open_: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    position_fraction: float,
    cost_per_side: float,
) -> CandidateReturns:
    """The return model of the search for targets `side`/`size` of shape (T, N).

    Candle t earns the exposure held before the fill on the gap close[t-1] -> open[t], pays
    `cost_per_side` on the exposure traded at open[t], then earns the new exposure on
    open[t] -> close[t]. (The fill rules of `strategy.vectorized`, with exposure in place of
    units.)
    """
    exposure = side.astype(np.float64) * size
    exposure *= position_fraction
    gap = np.zeros(len(close))
    gap[1:] = open_[1:] / close[:-1] - 1
    inside = close / open_ - 1
    log_net, log_gross = np.empty_like(exposure), np.empty_like(exposure)
    for start in range(0, len(close), _CHUNK_ROWS):  # bounded temporaries, same values
        rows = slice(start, min(start + _CHUNK_ROWS, len(close)))
        before = _shifted(exposure, 2, rows)  # exposure held going into candle t (from t-2)
        after = _shifted(exposure, 1, rows)  # exposure traded at the open of t (from t-1)
        held = 1 + before * gap[rows, None]
        grown = 1 + after * inside[rows, None]
        cost = 1 - cost_per_side * np.abs(after - before)
        log_gross[rows] = np.log(np.maximum(held * grown, 1e-12))
        log_net[rows] = np.log(np.maximum(held * cost * grown, 1e-12))
    entries = side != 0
    entries[1:] &= side[1:] != side[:-1]
    market = np.zeros(len(close))
    market[1:] = close[1:] / close[:-1] - 1
    return CandidateReturns(log_net, log_gross, entries, exposure, market)


def _shifted(matrix: FloatMatrix, lag: int, rows: slice) -> FloatMatrix:
    """Rows `rows` of `matrix` shifted down by `lag` rows (zeros before the first row)."""
    out = np.zeros((rows.stop - rows.start, matrix.shape[1]))
    first = max(rows.start - lag, 0)
    out[first + lag - rows.start :] = matrix[first : max(rows.stop - lag, first)]
    return out


@dataclass(frozen=True, slots=True)
class FoldChoice:
    """The candidate chosen for one test window and the evidence it was chosen on.

    Attributes:
        fold: walk-forward fold number.
        start, stop: row range [start, stop) of the test window (tested-period positions).
        window_start: first row of the selection window (rows [window_start, start)).
        candidate: index of the chosen candidate (the flat candidate when nothing qualified).
        score: the objective of the chosen candidate on the selection window.
        t_stat: its timing t-statistic on the selection window (`timing_t_statistics`).
        n_trades: its trades started in the selection window.
        n_eligible: candidates that passed the evidence rule.
        reason: why this candidate, in words.
    """

    fold: int
    start: int
    stop: int
    window_start: int
    candidate: int
    score: float
    t_stat: float
    n_trades: int
    n_eligible: int
    reason: str


def objective_scores(log_returns: FloatMatrix, objective: str) -> npt.NDArray[np.float64]:
    """Per-candidate objective over rows of per-candle log returns (flat candidates score 0).

    >>> objective_scores(np.array([[0.01, 0.0], [0.03, 0.0]]), "log_growth").round(3).tolist()
    [0.04, 0.0]
    >>> objective_scores(np.array([[0.01, 0.0], [0.03, 0.0]]), "sortino").tolist()
    [inf, 0.0]
    """
    if objective == "log_growth":
        return log_returns.sum(axis=0)
    n_rows, n_columns = log_returns.shape
    if objective == "sharpe":
        mean, variance = column_mean_var(matrix_rows(log_returns), n_rows, n_columns, ddof=1)
        spread = np.sqrt(variance)
    else:  # sortino: downside deviation below zero
        mean = log_returns.mean(axis=0)
        squares = np.zeros(n_columns)
        for start in range(0, n_rows, BLOCK_ROWS):
            squares += (np.minimum(log_returns[start : start + BLOCK_ROWS], 0.0) ** 2).sum(axis=0)
        spread = np.sqrt(squares / n_rows)
    # No spread: a positive mean without a single losing candle is the best possible ratio
    # (inf), anything else scores like flat.
    unbounded = np.where(mean > 0, np.inf, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, mean / spread, unbounded)


def t_statistics(log_returns: FloatMatrix) -> npt.NDArray[np.float64]:
    """t-statistic of the mean per-candle log return of each column (0 without variance)."""
    return _t_statistics(matrix_rows(log_returns), *log_returns.shape)


def _t_statistics(rows: RowBlocks, n: int, n_columns: int) -> npt.NDArray[np.float64]:
    if n < 2:
        return np.zeros(n_columns)
    mean, variance = column_mean_var(rows, n, n_columns, ddof=1)
    spread = np.sqrt(variance)
    # Below this the "spread" is float residue (e.g. a constant exposure's excess return):
    # its t-statistic would be arbitrary, so it counts as no evidence at all.
    real = spread > _SPREAD_FLOOR
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(real, mean / spread * np.sqrt(n), 0.0)


def timing_t_statistics(
    returns: CandidateReturns, first: int, stop: int
) -> npt.NDArray[np.float64]:
    """t-statistic of each candidate's net returns in excess of holding its own AVERAGE
    exposure all the time (rows [first, stop)): timing skill, net of costs.

    Measuring against flat would reward any long-biased rule for the market's drift (a
    trending random walk makes them look skilled); against its average exposure, only
    being in the market at better-than-random times counts. The excess returns are
    computed block by block, never as a whole (rows x candidates) matrix.
    """
    average = returns.exposure[first:stop].mean(axis=0)

    def excess(start: int, end: int) -> FloatMatrix:
        rows = slice(first + start, first + end)
        return np.expm1(returns.log_net[rows]) - returns.market[rows, None] * average[None, :]

    return _t_statistics(excess, stop - first, returns.log_net.shape[1])


def evidence_bar(n_trading: int, cfg: DecisionSettings) -> float:
    """The timing t-statistic a candidate needs: `min_t_stat`, plus (with `deflate_evidence`)
    the (1 - `evidence_alpha`) quantile of the best t among `n_trading` skill-less candidates,
    Phi^-1((1 - alpha) ** (1 / N)) for independent ones (conservative when they are
    correlated, as policies on one stream are). So noise passes with probability at most
    alpha however many candidates are searched, instead of about half the time at the
    expected maximum (the Deflated Sharpe Ratio's SR0).

    >>> round(evidence_bar(36, DecisionSettings(min_t_stat=0.0, evidence_alpha=0.05)), 2)
    2.98
    """
    if not cfg.deflate_evidence:
        return cfg.min_t_stat
    n = max(n_trading, 1)
    luck = float(norm.ppf((1.0 - cfg.evidence_alpha) ** (1.0 / n)))
    return cfg.min_t_stat + max(luck, 0.0)


def choose_nested(
    returns: CandidateReturns,
    windows: Sequence[tuple[int, int, int]],
    cfg: DecisionSettings,
    *,
    flat: int = 0,
) -> list[FoldChoice]:
    """Choose a candidate for each test window `(fold, start, stop)` from rows before `start`.

    Only rows `[max(0, start - selection_bars), start)` are read; see the module docstring for
    the evidence rule.
    """
    choices = []
    for fold, start, stop in windows:
        first = 0 if cfg.selection_bars is None else max(0, start - cfg.selection_bars)
        choices.append(_choose_one(returns, fold, first, start, stop, cfg, flat))
    return choices


def _choose_one(
    returns: CandidateReturns,
    fold: int,
    first: int,
    start: int,
    stop: int,
    cfg: DecisionSettings,
    flat: int,
) -> FoldChoice:
    def choice(
        candidate: int, score: float, t: float, trades: int, eligible: int, why: str
    ) -> FoldChoice:
        return FoldChoice(fold, start, stop, first, candidate, score, t, trades, eligible, why)

    if start - first < 2:
        return choice(flat, 0.0, 0.0, 0, 0, "no earlier out-of-sample predictions: stay flat")
    window = returns.log_net[first:start]
    scores = objective_scores(window, cfg.objective)
    t_stats = timing_t_statistics(returns, first, start)
    trades = returns.entries[first:start].sum(axis=0)
    bar = evidence_bar(returns.log_net.shape[1] - 1, cfg)
    eligible = (trades >= max(cfg.min_trades, 1)) & (t_stats >= bar) & (scores > 0)
    eligible[flat] = False
    n_eligible = int(eligible.sum())
    if not n_eligible:
        return choice(
            flat,
            0.0,
            0.0,
            0,
            0,
            f"no candidate had >= {cfg.min_trades} trades, t >= {bar:.2f} and a "
            f"positive {cfg.objective} over {start - first} candles: stay flat",
        )
    best = int(np.flatnonzero(eligible)[np.argmax(scores[eligible])])
    return choice(
        best,
        float(scores[best]),
        float(t_stats[best]),
        int(trades[best]),
        n_eligible,
        f"best {cfg.objective} of {n_eligible} eligible candidates over {start - first} candles",
    )


def chosen_path(
    side: npt.NDArray[np.int8], size: FloatMatrix, choices: Sequence[FoldChoice]
) -> tuple[npt.NDArray[np.int8], FloatMatrix]:
    """The traded targets: in each test window, the chosen candidate's own targets.

    Each candidate's targets run from the first tested candle, so a newly chosen policy takes
    over in the state it would be in (it may hold a position already).
    """
    out_side = np.zeros(len(side), dtype=np.int8)
    out_size = np.zeros(len(side), dtype=np.float64)
    for c in choices:
        out_side[c.start : c.stop] = side[c.start : c.stop, c.candidate]
        out_size[c.start : c.stop] = size[c.start : c.stop, c.candidate]
    return out_side, out_size


@dataclass(frozen=True, slots=True)
class PolicySearch:
    """Every candidate's targets and returns over the searched candles, and the choices.

    Attributes:
        policies: the policy of each candidate (the flat one first).
        streams: the probability stream (column of `proba_up`) each candidate trades (-1:
            the flat candidate, which trades nothing).
        side, size: targets of every candidate, shape (T, N).
        returns: the return model of every candidate.
        choices: the chosen candidate of each window, chosen on rows before it.
    """

    policies: tuple[DecisionPolicy, ...]
    streams: tuple[int, ...]
    side: npt.NDArray[np.int8]
    size: FloatMatrix
    returns: CandidateReturns
    choices: tuple[FoldChoice, ...]

    @property
    def n_candidates(self) -> int:
        """Candidates tried, the flat one included."""
        return len(self.policies)


def search_policies(
    proba_up: FloatMatrix,
    *,
    open_: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    windows: Sequence[tuple[int, int, int]],
    cfg: DecisionSettings,
    position_fraction: float,
    cost_per_side: float,
) -> PolicySearch:
    """Nested search over streams (columns of `proba_up`, shape (T, S)) x `cfg.grid` policies.

    A window `(fold, T, T)` after the last candle asks for the choice on ALL candles (what a
    model trained on them should trade next).
    """
    grid = policy_grid(cfg.grid)
    pairs = [(stream, policy) for stream in range(proba_up.shape[1]) for policy in grid[1:]]
    policies = (grid[0], *(policy for _, policy in pairs))
    streams = (-1, *(stream for stream, _ in pairs))
    columns = proba_up[:, [max(stream, 0) for stream in streams]]
    side, size = positions_for_policies(columns, policies)
    del columns  # (candles x candidates) floats no longer needed
    returns = candidate_returns(
        side,
        size,
        open_=open_,
        close=close,
        position_fraction=position_fraction,
        cost_per_side=cost_per_side,
    )
    choices = choose_nested(returns, windows, cfg, flat=0)
    return PolicySearch(policies, streams, side, size, returns, tuple(choices))
