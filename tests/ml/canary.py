"""No-peeking canary for nested selectors: overwrite a test window, its choice must not move."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from core.settings import DecisionSettings
from ml.policy_search import CandidateReturns, FoldChoice

Window = tuple[int, int, int]
Selector = Callable[[CandidateReturns, Sequence[Window], DecisionSettings], list[FoldChoice]]


def assert_no_peeking(
    selector: Selector,
    returns: CandidateReturns,
    windows: Sequence[Window],
    cfg: DecisionSettings,
    *,
    flat: int = 0,
    seed: int = 0,
) -> None:
    """Fail if a window's choice (or an earlier one's) depends on the rows inside the window.

    For every test window `(fold, start, stop)`, every row in `[start, stop)` of every array
    (net and gross returns, entries, exposure, the market's return) is overwritten with
    canaries built to flip the choice of a selector that reads them: noise, a crash of every
    candidate (a peeking selector falls back to flat) and a boom of one candidate the honest
    choice did not pick.
    """
    before = selector(returns, windows, cfg)
    rng = np.random.default_rng(seed)
    for k, (fold, start, stop) in enumerate(windows):
        for name, canary in _canaries(returns, start, stop, before[k].candidate, flat, rng):
            after = selector(canary, windows, cfg)
            moved = [c.fold for c, b in zip(after[: k + 1], before[: k + 1], strict=True) if c != b]
            assert not moved, (
                f"overwriting rows {start}:{stop} (test window of fold {fold}) with {name} "
                f"changed the choice of fold(s) {moved}: the selector peeks into the window"
            )


def _canaries(
    returns: CandidateReturns,
    start: int,
    stop: int,
    chosen: int,
    flat: int,
    rng: np.random.Generator,
) -> Iterator[tuple[str, CandidateReturns]]:
    n_rows, n = stop - start, returns.log_net.shape[1]
    every_other = np.zeros((n_rows, n), dtype=bool)
    every_other[::2] = True
    noise = rng.normal(0.0, 0.05, (n_rows, n))
    yield "noise", _overwrite(returns, start, stop, noise, rng.random((n_rows, n)) < 0.3)
    crash = -0.05 + rng.normal(0.0, 0.001, (n_rows, n))
    yield "a crash of every candidate", _overwrite(returns, start, stop, crash, every_other)
    target = next(c for c in range(n) if c not in (chosen, flat))
    boom = -0.05 + rng.normal(0.0, 0.001, (n_rows, n))
    boom[:, target] = 0.05 + rng.normal(0.0, 0.001, n_rows)
    yield f"a boom of candidate {target}", _overwrite(returns, start, stop, boom, every_other)


def _overwrite(
    returns: CandidateReturns, start: int, stop: int, log_returns: np.ndarray, entries: np.ndarray
) -> CandidateReturns:
    out = CandidateReturns(
        log_net=returns.log_net.copy(),
        log_gross=returns.log_gross.copy(),
        entries=returns.entries.copy(),
        exposure=returns.exposure.copy(),
        market=returns.market.copy(),
    )
    out.log_net[start:stop] = log_returns
    out.log_gross[start:stop] = log_returns + 0.001
    out.entries[start:stop] = entries
    out.exposure[start:stop] = np.sign(log_returns)
    out.market[start:stop] = log_returns.mean(axis=1)
    return out
