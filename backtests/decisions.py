"""The decision layer of a backtest: fixed policy or nested choice over streams x policies."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.settings import DecisionPolicy, Settings
from ml.decision import positions_for_policies
from ml.policy_search import (
    CandidateReturns,
    FoldChoice,
    candidate_returns,
    chosen_path,
    describe_policy,
    search_policies,
)
from strategy.costs import BPS

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbabilityStream:
    """Out-of-sample `proba_up` of one model at one label horizon over the tested candles."""

    name: str
    algorithm: str
    horizon_bars: int
    proba_up: pd.Series


@dataclass(frozen=True, slots=True)
class Candidate:
    """One thing the search may choose: a probability stream traded by a policy."""

    stream: str
    horizon_bars: int
    policy: DecisionPolicy

    @property
    def label(self) -> str:
        """e.g. 'lightgbm h=1 | long >=0.55 exit <0.5 hold 0 cool 0 fixed'."""
        if self.policy.stay_flat:
            return "stay flat"
        return f"{self.stream} | {describe_policy(self.policy)}"


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """What the decision layer trades over the tested candles and how it got there.

    Attributes:
        mode: "auto" (nested choice) or "fixed" (`decision.policy` for every window).
        candidates: every candidate tried (the flat one first in auto mode).
        choices: the candidate of each test window, with its evidence.
        side, size: the traded targets per tested candle (decided at its close).
        returns: the return model of every candidate over the tested candles (for the
            selection statistics and the hindsight grid).
    """

    mode: str
    candidates: tuple[Candidate, ...]
    choices: tuple[FoldChoice, ...]
    side: npt.NDArray[np.int8]
    size: npt.NDArray[np.float64]
    returns: CandidateReturns

    @property
    def n_trials(self) -> int:
        """Candidates tried (what the Deflated Sharpe Ratio is deflated by)."""
        return len(self.candidates)

    def chosen(self, choice: FoldChoice) -> Candidate:
        """The candidate of one window."""
        return self.candidates[choice.candidate]


def fold_windows(
    tested: pd.DatetimeIndex, folds: Sequence[tuple[int, pd.Timestamp, pd.Timestamp]]
) -> list[tuple[int, int, int]]:
    """(fold, start row, stop row) of each test window inside the tested candles."""
    windows = []
    for number, start, end in folds:
        first = int(tested.searchsorted(start, side="left"))
        stop = int(tested.searchsorted(end, side="right"))
        windows.append((number, first, stop))
    return windows


def decide(
    tested: pd.DataFrame,
    streams: Sequence[ProbabilityStream],
    windows: Sequence[tuple[int, int, int]],
    settings: Settings,
) -> DecisionOutcome:
    """Targets over the tested candles: the fixed policy, or the nested choice of a candidate.

    In "fixed" mode only the first stream is traded, with `decision.policy`.
    """
    cfg, costs = settings.decision, settings.strategy
    proba = np.column_stack([s.proba_up.reindex(tested.index).to_numpy("float64") for s in streams])
    prices = {
        "open_": tested["open"].to_numpy("float64"),
        "close": tested["close"].to_numpy("float64"),
    }
    cost = costs.fee_rate + costs.slippage_bps * BPS
    if cfg.mode == "fixed":
        candidates = [Candidate(streams[0].name, streams[0].horizon_bars, cfg.policy)]
        side, size = positions_for_policies(proba[:, :1], [cfg.policy])
        returns = candidate_returns(
            side, size, **prices, position_fraction=costs.position_fraction, cost_per_side=cost
        )
        choices = [
            FoldChoice(fold, start, stop, start, 0, np.nan, np.nan, 0, 1, "fixed policy")
            for fold, start, stop in windows
        ]
    else:
        search = search_policies(
            proba,
            **prices,
            windows=windows,
            cfg=cfg,
            position_fraction=costs.position_fraction,
            cost_per_side=cost,
        )
        candidates = [
            Candidate("flat", 0, policy)
            if stream < 0
            else Candidate(streams[stream].name, streams[stream].horizon_bars, policy)
            for stream, policy in zip(search.streams, search.policies, strict=True)
        ]
        side, size, returns, choices = (
            search.side,
            search.size,
            search.returns,
            list(search.choices),
        )
    path_side, path_size = chosen_path(side, size, choices)
    _log_choices(candidates, choices)
    return DecisionOutcome(
        mode=cfg.mode,
        candidates=tuple(candidates),
        choices=tuple(choices),
        side=path_side,
        size=path_size,
        returns=returns,
    )


def _log_choices(candidates: Sequence[Candidate], choices: Sequence[FoldChoice]) -> None:
    for c in choices:
        logger.info(
            "Fold %d (rows %d-%d): %s (%s)",
            c.fold,
            c.start,
            c.stop - 1,
            candidates[c.candidate].label,
            c.reason,
        )
