"""The validated decision policy saved with a model: chosen by the nested rule, with evidence."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.settings import DecisionSettings, Settings
from ml.decision import positions_for_policies
from ml.expectation import return_bands
from ml.overfitting import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    trial_sharpe_variance,
)
from ml.policy_search import (
    FoldChoice,
    PolicySearch,
    candidate_returns,
    chosen_path,
    describe_policy,
    search_policies,
)
from ml.registry import ReturnBand, ValidatedPolicy

logger = logging.getLogger(__name__)

_BPS = 1e-4


def prediction_windows(folds: pd.Series) -> list[tuple[int, int, int]]:
    """(fold, first row, stop row) of each fold in a walk-forward predictions table.

    >>> prediction_windows(pd.Series([1, 1, 2, 2, 2]))
    [(1, 0, 2), (2, 2, 5)]
    """
    values = folds.to_numpy()
    windows = []
    for number in dict.fromkeys(values.tolist()):
        rows = np.flatnonzero(values == number)
        windows.append((int(number), int(rows[0]), int(rows[-1]) + 1))
    return windows


def validate_policy(
    proba_up: pd.DataFrame, folds: pd.Series, candles: pd.DataFrame, settings: Settings
) -> tuple[ValidatedPolicy, int]:
    """The policy to trade after these out-of-sample predictions, and the chosen stream.

    `proba_up` holds one column per stream (e.g. one per model), indexed like the walk-forward
    predictions; `folds` numbers their test windows. Each fold is first chosen on earlier
    folds only (the nested backtest of the rule, reported as evidence); the policy saved is
    the rule's choice on ALL the predictions, for the candles that come after them. In
    `decision.mode: fixed` the configured policy is saved as it is. The stream index is -1
    when the rule chose to stay flat.
    """
    cfg = settings.decision
    prices = candles.reindex(proba_up.index)
    if cfg.mode == "fixed":
        fixed = ValidatedPolicy(
            policy=cfg.policy,
            chosen_by="config (decision.mode: fixed)",
            n_candidates=1,
            return_bands=_fixed_bands(proba_up, prices, settings),
        )
        return fixed, 0
    windows = prediction_windows(folds)
    n_rows = len(proba_up)
    search = search_policies(
        proba_up.to_numpy("float64"),
        open_=prices["open"].to_numpy("float64"),
        close=prices["close"].to_numpy("float64"),
        windows=[*windows, (len(windows) + 1, n_rows, n_rows)],
        cfg=cfg,
        position_fraction=settings.strategy.position_fraction,
        cost_per_side=settings.strategy.fee_rate + settings.strategy.slippage_bps * _BPS,
    )
    forward = search.choices[-1]
    nested = search.choices[:-1]
    policy = search.policies[forward.candidate]
    evidence = _nested_evidence(
        search,
        nested,
        prices,
        cfg=cfg,
        position_fraction=settings.strategy.position_fraction,
        cost_per_side=settings.strategy.fee_rate + settings.strategy.slippage_bps * _BPS,
    )
    validated = ValidatedPolicy(
        policy=policy,
        chosen_by=f"nested rule ({cfg.objective}, >= {cfg.min_trades} trades, deflated t) on "
        f"{n_rows} out-of-sample candles: {forward.reason}",
        n_candidates=search.n_candidates,
        **evidence,
    )
    logger.info("Validated policy: %s (%s)", describe_policy(policy), forward.reason)
    return validated, search.streams[forward.candidate]


def _nested_evidence(
    search: PolicySearch,
    nested: Sequence[FoldChoice],
    prices: pd.DataFrame,
    *,
    cfg: DecisionSettings,
    position_fraction: float,
    cost_per_side: float,
) -> dict[str, Any]:
    """Net return of the traded nested path (return model, switching costs included),
    buy-and-hold, its DSR, the PBO of the candidates and the path's expectation bands."""
    side, size = chosen_path(search.side, search.size, nested)
    close = prices["close"].to_numpy("float64")
    path = candidate_returns(
        side[:, None],
        size[:, None],
        open_=prices["open"].to_numpy("float64"),
        close=close,
        position_fraction=position_fraction,
        cost_per_side=cost_per_side,
    )
    log_net = path.log_net[:, 0]
    simple = np.expm1(search.returns.log_net)
    variance = trial_sharpe_variance(simple)
    deflated = deflated_sharpe_ratio(
        np.expm1(log_net), n_trials=search.n_candidates, sharpe_variance=variance
    )
    pbo = None
    if search.n_candidates > 1 and len(simple) >= 4 * cfg.pbo_blocks:
        pbo = probability_of_backtest_overfitting(simple, n_blocks=cfg.pbo_blocks).probability
    return {
        "return_bands": return_bands(log_net),
        "nested_net_return": float(np.expm1(log_net.sum())),
        "nested_buy_and_hold_return": float(close[-1] / close[0] - 1),
        "deflated_sharpe": deflated.probability,
        "probability_of_overfitting": pbo,
    }


def _fixed_bands(
    proba_up: pd.DataFrame, prices: pd.DataFrame, settings: Settings
) -> tuple[ReturnBand, ...]:
    """Expectation bands of the configured policy over the first stream's predictions."""
    strategy = settings.strategy
    side, size = positions_for_policies(
        proba_up.iloc[:, 0].to_numpy("float64"), [settings.decision.policy]
    )
    path = candidate_returns(
        side,
        size,
        open_=prices["open"].to_numpy("float64"),
        close=prices["close"].to_numpy("float64"),
        position_fraction=strategy.position_fraction,
        cost_per_side=strategy.fee_rate + strategy.slippage_bps * _BPS,
    )
    return return_bands(path.log_net[:, 0])
