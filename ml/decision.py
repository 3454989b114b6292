"""`positions_from_proba`: the one rule turning `proba_up` into target positions (all callers).

The backtest (backtrader and its numpy twin), the nested policy search, the live bot and the
API call the same function. It is vectorised over candidate policies (one loop over candles,
numpy across policies), so the search scores dozens of policies in one pass and a single
policy is the one-column case.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from core.settings import DecisionPolicy, DecisionSettings
from core.types import Signal
from ml.registry import ValidatedPolicy

logger = logging.getLogger(__name__)

Action = Literal["LONG", "FLAT", "SHORT"]
ACTIONS: dict[int, Action] = {1: "LONG", 0: "FLAT", -1: "SHORT"}
_NEVER = np.iinfo(np.int64).max // 4  # "no exit yet": any cooldown is over

PolicySource = Literal["manifest", "config", "config (model has no validated policy)"]
"""Where the policy the bot and the API trade comes from (see `live_policy`)."""
NO_VALIDATED_POLICY: PolicySource = "config (model has no validated policy)"


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
        # A stay-flat policy closes what it inherits (e.g. after a promotion) at once.
        leave = in_position & (
            ((held >= params.min_hold) & np.where(side > 0, leave_long[t], leave_short[t]))
            | ~params.active
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


def actions_from_flat(
    proba_up: npt.ArrayLike, policy: DecisionPolicy
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64]]:
    """What the policy does at each of many independent rows, each from a flat state.

    The state machine of `positions_from_proba` with one candle and one column per row: the
    action of a single prediction without history (the API's `/predict` and `/predict/batch`).

    >>> sides, sizes = actions_from_flat([0.6, 0.52, 0.4], DecisionPolicy(allow_short=True))
    >>> sides.tolist(), sizes.tolist()
    ([1, 0, -1], [1.0, 0.0, 1.0])
    """
    proba = np.asarray(proba_up, dtype="float64").reshape(1, -1)
    n = proba.shape[1]
    start = (np.zeros(n, np.int8), np.zeros(n), np.zeros(n, np.int64), np.full(n, _NEVER))
    side, size, _ = _run(proba, _params([policy]), start)
    return side[0].copy(), size[0].copy()


def action_from_flat(proba_up: float, policy: DecisionPolicy) -> tuple[Signal, float]:
    """`actions_from_flat` for one probability, in plain Python (the API's `/predict`).

    From flat with no cooldown pending, one step of the state machine is only the entry
    rule; numpy costs ~100 us per call on one value, more than the whole compiled prediction.
    The tests check it against `positions_from_proba` for every policy kind.

    >>> action_from_flat(0.625, DecisionPolicy(sizing="proba", edge_scale=2.0))
    (1, 0.5)
    """
    if policy.stay_flat:
        return 0, 0.0
    if proba_up >= policy.entry_threshold:
        side: Signal = 1
    elif policy.allow_short and proba_up <= policy.short_entry_threshold:
        side = -1
    else:
        return 0, 0.0
    if policy.sizing == "fixed":
        return side, 1.0
    return side, min(1.0, policy.edge_scale * abs(2 * proba_up - 1))


# --------------------------------------------------------------------------- live trading
def history_bars_needed(policy: DecisionPolicy) -> int:
    """Decisions of history `state_from_history` needs to continue `policy` exactly.

    Only `bars_held >= min_hold_bars` and `bars_since_exit >= cooldown_bars` matter, so a
    position or flat run longer than both limits is as good as an endless one.

    >>> history_bars_needed(DecisionPolicy(min_hold_bars=12, cooldown_bars=24))
    26
    """
    return max(policy.min_hold_bars, policy.cooldown_bars) + 2


def state_from_history(sides: Sequence[int], sizes: Sequence[float]) -> PolicyState:
    """The policy state after the last of past decisions (oldest first): the live bot's
    restart point, rebuilt from the sides and sizes it logged.

    `bars_held` counts the candles of the final position run after its entry; after a flat
    run `bars_since_exit` counts the candles after the exit. A flat run that fills the whole
    history had no exit in it ("long ago"). Pass all decisions since the start, or at least
    `history_bars_needed(policy)` of them: longer runs change no decision. With the whole
    sequence this is exactly `positions_from_proba(...).final_state`.

    >>> state_from_history([1, 0, 1, 1, 1], [1.0, 0.0, 0.5, 0.5, 0.5])
    PolicyState(side=1, size=0.5, bars_held=2, bars_since_exit=1)
    >>> state_from_history([1, 0, 0], [1.0, 0.0, 0.0]).bars_since_exit
    1
    """
    if len(sides) != len(sizes):
        raise ValueError(f"{len(sides)} sides but {len(sizes)} sizes")
    if not sides:
        return PolicyState()
    last = int(sides[-1])
    if last not in ACTIONS:
        raise ValueError(f"a side is -1, 0 or 1, got {last}")
    run = _run_length(sides, len(sides))
    if last == 0:
        if run == len(sides):
            return PolicyState()
        # Right at the exit candle the machine still reports how long the position was held.
        held = _run_length(sides, len(sides) - 1) if run == 1 else 0
        return PolicyState(bars_held=held, bars_since_exit=run - 1)
    # While in a position the count since the last exit stands still: the flat candles
    # before the entry (exit candle included), 0 after a flip, "long ago" if none is known.
    since = _NEVER
    before = len(sides) - run
    if before and int(sides[before - 1]) != 0:
        since = 0
    elif before:
        flat = _run_length(sides, before)
        since = _NEVER if flat == before else flat
    return PolicyState(
        side=last,  # type: ignore[arg-type]
        size=float(sizes[-1]),
        bars_held=run - 1,
        bars_since_exit=since,
    )


def _run_length(sides: Sequence[int], end: int) -> int:
    """How many decisions before index `end` have the side of `sides[end - 1]`."""
    value, n = int(sides[end - 1]), 1
    while n < end and int(sides[end - n - 1]) == value:
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class LivePolicy:
    """The policy live code trades for one model, where it comes from, and the model's own
    validated policy with its evidence (None for models trained before the decision layer)."""

    policy: DecisionPolicy
    source: PolicySource
    validated: ValidatedPolicy | None = None

    @property
    def description(self) -> str:
        """The rule in words, e.g. for logs and the dashboard."""
        return describe_policy(self.policy)


def live_policy(validated: ValidatedPolicy | None, settings: DecisionSettings) -> LivePolicy:
    """The policy the bot and the API trade: the model's validated policy (its manifest's
    `decision`), unless `decision.live_policy: config` says to trade `decision.policy`, or
    the model has none (then `decision.policy`, and `source` says so).

    >>> live_policy(None, DecisionSettings()).source
    'config (model has no validated policy)'
    """
    if settings.live_policy == "config":
        return LivePolicy(settings.policy, "config", validated)
    if validated is None:
        return LivePolicy(settings.policy, NO_VALIDATED_POLICY)
    return LivePolicy(validated.policy, "manifest", validated)


def log_live_policy(market: str, model_id: str, live: LivePolicy) -> None:
    """One line saying which policy a newly loaded model trades (a WARNING when the model
    has no validated policy, so the config's fixed rule trades in its place)."""
    if live.source == NO_VALIDATED_POLICY:
        logger.warning(
            "%s: model %s has no validated decision policy in its manifest; trading "
            "decision.policy from the config instead: %s. Retrain it with `cryptopred train` "
            "to trade a policy chosen on its own out-of-sample predictions",
            market,
            model_id,
            live.description,
        )
        return
    logger.info(
        "%s: model %s trades the %s decision policy: %s",
        market,
        model_id,
        "validated (manifest)" if live.source == "manifest" else "configured (decision.policy)",
        live.description,
    )


def describe_policy(policy: DecisionPolicy) -> str:
    """A decision policy in one line.

    >>> describe_policy(DecisionPolicy(min_hold_bars=12, cooldown_bars=24))
    'long at p_up >= 0.55, exit below 0.50, hold >= 12 bars, cooldown 24 bars, fixed size'
    >>> describe_policy(DecisionPolicy(stay_flat=True))
    'stay flat (never trade)'
    """
    if policy.stay_flat:
        return "stay flat (never trade)"
    parts = [f"long at p_up >= {policy.entry_threshold:.2f}",
             f"exit below {policy.exit_threshold:.2f}"]  # fmt: skip
    if policy.allow_short:
        parts.append(
            f"short at p_up <= {policy.short_entry_threshold:.2f}, "
            f"cover above {policy.short_exit_threshold:.2f}"
        )
    if policy.min_hold_bars:
        parts.append(f"hold >= {policy.min_hold_bars} bars")
    if policy.cooldown_bars:
        parts.append(f"cooldown {policy.cooldown_bars} bars")
    sized = (
        "fixed size" if policy.sizing == "fixed" else f"size min(1, {policy.edge_scale:g}|2p-1|)"
    )
    parts.append(sized)
    return ", ".join(parts)
