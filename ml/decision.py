"""`positions_from_proba`: the one rule turning `proba_up` into target positions (all callers).

The backtest (backtrader and its numpy twin), the nested policy search, the live bot and the
API call the same function. It is vectorised over candidate policies (one loop over candles,
numpy across policies), so the search scores dozens of policies in one pass and a single
policy is the one-column case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.settings import DecisionPolicy
from core.types import Signal

Action = Literal["LONG", "FLAT", "SHORT"]
ACTIONS: dict[int, Action] = {1: "LONG", 0: "FLAT", -1: "SHORT"}
_NEVER = np.iinfo(np.int64).max // 4  # "no exit yet": any cooldown is over


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Where a policy stands after the decision at one candle's close.

    Attributes:
        side: -1 short, 0 flat, 1 long (the target position).
        size: fraction of `strategy.position_fraction` traded (fixed at entry; 0 when flat).
        bars_held: candles the current position has been held at this decision.
        bars_since_exit: candles since the last exit (large when there was none).
    """

    side: Signal = 0
    size: float = 0.0
    bars_held: int = 0
    bars_since_exit: int = _NEVER

    @property
    def action(self) -> Action:
        """LONG, FLAT or SHORT."""
        return ACTIONS[self.side]


@dataclass(frozen=True, slots=True)
class TargetPositions:
    """Target position decided at each candle's close (filled at the next open).

    `side` is -1/0/1; `size` the traded fraction of `strategy.position_fraction` (0 when
    flat); `final_state` continues the sequence (the live bot's next tick).
    """

    side: npt.NDArray[np.int8]
    size: npt.NDArray[np.float64]
    final_state: PolicyState

    @property
    def actions(self) -> list[Action]:
        """LONG/FLAT/SHORT per candle."""
        return [ACTIONS[int(s)] for s in self.side]


@dataclass(frozen=True, slots=True)
class _Params:
    """Policy parameters as arrays across candidates (shape (n,))."""

    entry: npt.NDArray[np.float64]
    exit: npt.NDArray[np.float64]
    short_entry: npt.NDArray[np.float64]
    short_exit: npt.NDArray[np.float64]
    min_hold: npt.NDArray[np.int64]
    cooldown: npt.NDArray[np.int64]
    allow_short: npt.NDArray[np.bool_]
    proba_sizing: npt.NDArray[np.bool_]
    edge_scale: npt.NDArray[np.float64]
    active: npt.NDArray[np.bool_]


def _params(policies: Sequence[DecisionPolicy]) -> _Params:
    def column(name: str, dtype: str) -> npt.NDArray[Any]:
        return np.array([getattr(p, name) for p in policies], dtype=dtype)

    return _Params(
        entry=column("entry_threshold", "float64"),
        exit=column("exit_threshold", "float64"),
        short_entry=column("short_entry_threshold", "float64"),
        short_exit=column("short_exit_threshold", "float64"),
        min_hold=column("min_hold_bars", "int64"),
        cooldown=column("cooldown_bars", "int64"),
        allow_short=column("allow_short", "bool"),
        proba_sizing=np.array([p.sizing == "proba" for p in policies], dtype=bool),
        edge_scale=column("edge_scale", "float64"),
        active=np.array([not p.stay_flat for p in policies], dtype=bool),
    )


def position_size(proba_up: npt.ArrayLike, policy: DecisionPolicy) -> npt.NDArray[np.float64]:
    """Traded fraction of `strategy.position_fraction` when a position is entered.

    >>> position_size([0.6, 0.55], DecisionPolicy(sizing="proba", edge_scale=5.0)).round(6).tolist()
    [1.0, 0.5]
    """
    p = np.asarray(proba_up, dtype="float64")
    if policy.sizing == "fixed":
        return np.ones_like(p)
    return np.minimum(1.0, policy.edge_scale * np.abs(2 * p - 1))


def positions_for_policies(
    proba_up: npt.ArrayLike, policies: Sequence[DecisionPolicy]
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    """Sides and sizes (shape (T, N)) of N policies over the same or their own probabilities.

    `proba_up` is (T,) (shared) or (T, N) (one column per policy, e.g. other horizons). Every
    policy starts flat with no cooldown pending.
    """
    proba = np.asarray(proba_up, dtype="float64")
    if proba.ndim == 1:
        proba = np.broadcast_to(proba[:, None], (len(proba), len(policies)))
    if proba.ndim != 2 or proba.shape[1] != len(policies):
        raise ValueError(
            f"proba_up must be (T,) or (T, {len(policies)}) for {len(policies)} policies, "
            f"got shape {proba.shape}"
        )
    n = len(policies)
    start = (np.zeros(n, np.int8), np.zeros(n), np.zeros(n, np.int64), np.full(n, _NEVER))
    side, size, _ = _run(proba, _params(policies), start)
    return side, size


def positions_from_proba(
    proba_up: npt.ArrayLike, policy: DecisionPolicy, *, state: PolicyState | None = None
) -> TargetPositions:
    """Target positions of one policy over a probability sequence, continuing from `state`.

    A non-finite probability means "no opinion": no entry, and an exit once the minimum
    holding time is over.

    >>> policy = DecisionPolicy(entry_threshold=0.55, exit_threshold=0.5)
    >>> positions_from_proba([0.6, 0.52, 0.49, 0.52], policy).side.tolist()
    [1, 1, 0, 0]
    >>> held = DecisionPolicy(entry_threshold=0.55, exit_threshold=0.5, min_hold_bars=3)
    >>> positions_from_proba([0.6, 0.4, 0.4, 0.4, 0.4], held).side.tolist()
    [1, 1, 1, 0, 0]
    """
    proba = np.asarray(proba_up, dtype="float64").reshape(-1, 1)
    first = state or PolicyState()
    start = (
        np.array([first.side], np.int8),
        np.array([first.size]),
        np.array([first.bars_held], np.int64),
        np.array([first.bars_since_exit], np.int64),
    )
    side, size, end = _run(proba, _params([policy]), start)
    final = PolicyState(
        side=int(end[0][0]),  # type: ignore[arg-type]
        size=float(end[1][0]),
        bars_held=int(end[2][0]),
        bars_since_exit=int(end[3][0]),
    )
    return TargetPositions(side=side[:, 0].copy(), size=size[:, 0].copy(), final_state=final)


_State = tuple[
    npt.NDArray[np.int8], npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]
]


def _run(
    proba: npt.NDArray[np.float64], params: _Params, start: _State
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], _State]:
    """The policy state machine, one candle at a time, numpy across candidates.

    Every comparison with a threshold is done for all candles up front; the loop only
    carries the state (side, size, candles held, candles since the last exit).
    """
    n_bars, n = proba.shape
    with np.errstate(invalid="ignore"):
        # `~(p >= x)` is True for NaN too: no opinion leaves a position once it may.
        leave_long = ~(proba >= params.exit)
        leave_short = ~(proba <= params.short_exit)
        go_long_at = (proba >= params.entry) & params.active
        go_short_at = (proba <= params.short_entry) & params.allow_short & params.active
    go_short_at &= ~go_long_at
    edge = np.minimum(1.0, params.edge_scale * np.abs(2 * proba - 1))
    entry_size = np.where(params.proba_sizing, edge, 1.0)
    side, size = start[0].copy(), start[1].copy()
    held, since = start[2].copy(), start[3].copy()
    out_side = np.zeros((n_bars, n), dtype=np.int8)
    out_size = np.zeros((n_bars, n), dtype=np.float64)
    for t in range(n_bars):
        in_position = side != 0
        held = np.where(in_position, held + 1, 0)
        since = np.where(in_position, since, np.minimum(since + 1, _NEVER))
        leave = (
            in_position
            & (held >= params.min_hold)
            & np.where(side > 0, leave_long[t], leave_short[t])
        )
        since[leave] = 0
        ready = (side == 0) | leave
        ready &= since >= params.cooldown
        go_long = ready & go_long_at[t]
        go_short = ready & go_short_at[t]
        entering = go_long | go_short
        side = np.where(leave, 0, side)
        side[go_long] = 1
        side[go_short] = -1
        size = np.where(entering, entry_size[t], np.where(side == 0, 0.0, size))
        held[entering] = 0
        out_side[t] = side
        out_size[t] = size
    end: _State = (side.astype(np.int8), size, held, since)
    return out_side, out_size, end


def direction_and_action(
    proba_up: float, *, threshold: float, policy: DecisionPolicy, state: PolicyState | None = None
) -> tuple[Literal["UP", "DOWN"], PolicyState]:
    """The two things every shown prediction carries: the direction at the model's
    classification threshold (scored for accuracy) and what the policy does (the action).

    >>> direction, after = direction_and_action(0.53, threshold=0.5, policy=DecisionPolicy())
    >>> direction, after.action
    ('UP', 'FLAT')
    """
    direction: Literal["UP", "DOWN"] = "UP" if proba_up >= threshold else "DOWN"
    return direction, positions_from_proba([proba_up], policy, state=state).final_state
