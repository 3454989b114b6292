"""positions_from_proba: hysteresis, shorts, NaN, min-hold, cooldown, sizing, state, N policies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.settings import DecisionPolicy
from ml.decision import (
    PolicyState,
    direction_and_action,
    position_size,
    positions_for_policies,
    positions_from_proba,
)

NAN = math.nan
LONG_ONLY = DecisionPolicy(entry_threshold=0.55, exit_threshold=0.5)
WITH_SHORT = DecisionPolicy(
    entry_threshold=0.55,
    exit_threshold=0.5,
    allow_short=True,
    short_entry_threshold=0.45,
    short_exit_threshold=0.5,
)


def _sides(proba, policy):
    return positions_from_proba(proba, policy).side.tolist()


def _step(proba: float, position: int, policy: DecisionPolicy) -> int:
    """The target after one probability, from a position held (no hold or cooldown pending)."""
    state = PolicyState(side=position, size=1.0 if position else 0.0)  # type: ignore[arg-type]
    return positions_from_proba([proba], policy, state=state).final_state.side


# ----------------------------------------------------------------- the hysteresis rule
@pytest.mark.parametrize(
    ("proba", "position", "expected"),
    [
        (0.55, 0, 1),  # entry is inclusive
        (0.549, 0, 0),
        (0.50, 1, 1),  # held while >= exit
        (0.499, 1, 0),  # exit below exit_threshold
        (0.30, 0, 0),  # no shorts without allow_short
        (NAN, 1, 0),  # no opinion: out (no minimum hold here)
        (NAN, 0, 0),  # no opinion: no entry
    ],
)
def test_positions_from_proba_long_only(proba, position, expected):
    assert _step(proba, position, LONG_ONLY) == expected


@pytest.mark.parametrize(
    ("proba", "position", "expected"),
    [
        (0.45, 0, -1),  # short entry is inclusive
        (0.451, 0, 0),
        (0.5, -1, -1),  # held while <= short exit
        (0.51, -1, 0),
        (0.6, -1, 1),  # reversal short -> long in one decision
        (0.4, 1, -1),  # reversal long -> short
        (NAN, -1, 0),
    ],
)
def test_positions_from_proba_with_short(proba, position, expected):
    assert _step(proba, position, WITH_SHORT) == expected


def test_positions_from_proba_hysteresis_sequence():
    proba = [0.6, 0.52, 0.5, 0.49, 0.52, 0.55, 0.3]
    assert _sides(proba, LONG_ONLY) == [1, 1, 1, 0, 0, 1, 0]


def _legacy_signals(proba, *, long, exit_, short, allow_short):
    """The rule of the removed `ml.signals.signals_from_proba` (ml.signal thresholds)."""
    out, position = [], 0
    for p in proba:
        if not np.isfinite(p):
            position = 0
        elif position == 1 and p >= exit_:
            position = 1
        elif position == -1 and allow_short and p <= exit_:
            position = -1
        elif p >= long:
            position = 1
        elif allow_short and p <= short:
            position = -1
        else:
            position = 0
        out.append(position)
    return out


@pytest.mark.parametrize("allow_short", [False, True])
def test_old_signal_thresholds_map_to_the_same_positions(allow_short):
    """long_threshold -> entry, exit -> exit and short exit, short_threshold -> short entry."""
    proba = np.random.default_rng(3).uniform(0.35, 0.65, 2000)
    proba[::17] = NAN
    policy = DecisionPolicy(
        entry_threshold=0.56,
        exit_threshold=0.51,
        allow_short=allow_short,
        short_entry_threshold=0.44,
        short_exit_threshold=0.51,
    )
    legacy = _legacy_signals(proba, long=0.56, exit_=0.51, short=0.44, allow_short=allow_short)
    assert _sides(proba, policy) == legacy
    assert set(legacy) == ({-1, 0, 1} if allow_short else {0, 1})


# ----------------------------------------------------------------- holding time and cooldown
@pytest.mark.parametrize(
    ("hold", "expected"),
    [
        (0, [1, 0, 0, 0, 0, 0]),
        (1, [1, 0, 0, 0, 0, 0]),  # the exit decision comes one candle after the entry anyway
        (3, [1, 1, 1, 0, 0, 0]),  # entered at 0, exit decided at 3: held 3 candles
        (5, [1, 1, 1, 1, 1, 0]),
    ],
)
def test_positions_from_proba_min_hold_bars(hold, expected):
    policy = DecisionPolicy(min_hold_bars=hold)
    assert _sides([0.6, 0.4, 0.4, 0.4, 0.4, 0.4], policy) == expected


def test_min_hold_keeps_a_position_through_no_opinion_then_leaves():
    policy = DecisionPolicy(min_hold_bars=3)
    assert _sides([0.6, NAN, NAN, NAN, NAN], policy) == [1, 1, 1, 0, 0]


def test_min_hold_does_not_force_an_exit_when_the_signal_holds():
    policy = DecisionPolicy(min_hold_bars=2)
    assert _sides([0.6, 0.4, 0.52, 0.52, 0.4], policy) == [1, 1, 1, 1, 0]


def test_min_hold_delays_a_reversal_too():
    policy = WITH_SHORT.model_copy(update={"min_hold_bars": 2})
    assert _sides([0.6, 0.3, 0.3, 0.3], policy) == [1, 1, -1, -1]


@pytest.mark.parametrize(
    ("cooldown", "expected"),
    [
        (0, [1, 0, 1, 1, 1, 1]),  # re-entered at the next decision
        (1, [1, 0, 1, 1, 1, 1]),
        (2, [1, 0, 0, 1, 1, 1]),  # exit decided at 1: flat decisions at 1 and 2
        (4, [1, 0, 0, 0, 0, 1]),
    ],
)
def test_positions_from_proba_cooldown_bars(cooldown, expected):
    policy = DecisionPolicy(cooldown_bars=cooldown)
    assert _sides([0.6, 0.4, 0.6, 0.6, 0.6, 0.6], policy) == expected


def test_cooldown_blocks_a_reversal_in_the_exit_candle():
    with_cooldown = WITH_SHORT.model_copy(update={"cooldown_bars": 1})
    assert _sides([0.6, 0.3, 0.3, 0.3], WITH_SHORT) == [1, -1, -1, -1]
    assert _sides([0.6, 0.3, 0.3, 0.3], with_cooldown) == [1, 0, -1, -1]


def test_no_cooldown_is_pending_at_the_start():
    assert _sides([0.6, 0.6], DecisionPolicy(cooldown_bars=50)) == [1, 1]


# ----------------------------------------------------------------- sizing
def test_proba_sizing_is_fixed_at_entry():
    policy = DecisionPolicy(sizing="proba", edge_scale=5.0)
    out = positions_from_proba([0.56, 0.9, 0.52, 0.3, 0.6, 0.7], policy)
    assert out.side.tolist() == [1, 1, 1, 0, 1, 1]
    # 5 * |2 * 0.56 - 1| = 0.6 kept while held; 5 * |2 * 0.6 - 1| = 1.0 at the re-entry
    assert out.size.tolist() == pytest.approx([0.6, 0.6, 0.6, 0.0, 1.0, 1.0])


def test_proba_sizing_of_a_short_uses_the_edge_below_one_half():
    policy = WITH_SHORT.model_copy(update={"sizing": "proba", "edge_scale": 2.0})
    out = positions_from_proba([0.45, 0.2, 0.5, 0.6], policy)
    assert out.side.tolist() == [-1, -1, -1, 1]
    assert out.size.tolist() == pytest.approx([0.2, 0.2, 0.2, 0.4])  # 2*|2p-1|, at entry


def test_proba_sizing_is_capped_at_one():
    out = positions_from_proba([0.99], DecisionPolicy(sizing="proba", edge_scale=10.0))
    assert out.size.tolist() == [1.0]


def test_fixed_sizing_trades_the_whole_fraction_and_zero_when_flat():
    out = positions_from_proba([0.4, 0.6, 0.99, 0.3], LONG_ONLY)
    assert out.size.tolist() == [0.0, 1.0, 1.0, 0.0]


def test_position_size_by_sizing_rule():
    assert position_size([0.6, 0.4, 0.5], DecisionPolicy()).tolist() == [1.0, 1.0, 1.0]
    proba = position_size([0.6, 0.4, 0.5], DecisionPolicy(sizing="proba", edge_scale=2.5))
    assert proba.tolist() == pytest.approx([0.5, 0.5, 0.0])


# ----------------------------------------------------------------- shorts, flat, no opinion
def test_shorts_use_their_own_thresholds():
    policy = DecisionPolicy(
        entry_threshold=0.6,
        exit_threshold=0.55,
        allow_short=True,
        short_entry_threshold=0.4,
        short_exit_threshold=0.45,
    )
    # 0.42 is no short entry (<= 0.4 is); 0.45 keeps the short (> 0.45 leaves); 0.58 is no long
    assert _sides([0.42, 0.4, 0.44, 0.45, 0.46, 0.58, 0.6, 0.55, 0.54], policy) == [
        0, -1, -1, -1, 0, 0, 1, 1, 0,
    ]  # fmt: skip


def test_short_thresholds_are_ignored_without_allow_short():
    policy = DecisionPolicy(short_entry_threshold=0.45)
    assert _sides([0.1, 0.3, 0.44], policy) == [0, 0, 0]


def test_stay_flat_never_trades():
    out = positions_from_proba([1.0, 0.0, 0.99, 0.01], DecisionPolicy(stay_flat=True))
    assert out.side.tolist() == [0, 0, 0, 0] and out.size.tolist() == [0.0] * 4
    assert out.final_state.action == "FLAT"


def test_no_opinion_enters_nothing_and_leaves_once_allowed():
    proba = [NAN, 0.6, NAN, 0.6, 0.2, NAN, 0.2]
    assert _sides(proba, LONG_ONLY) == [0, 1, 0, 1, 0, 0, 0]
    assert _sides(proba, WITH_SHORT) == [0, 1, 0, 1, -1, 0, -1]
    assert _sides([NAN] * 5, WITH_SHORT) == [0] * 5


def test_target_positions_actions():
    out = positions_from_proba([0.6, 0.52, 0.3], WITH_SHORT)
    assert out.actions == ["LONG", "LONG", "SHORT"]
    assert out.final_state.action == "SHORT"


def test_direction_and_action_are_separate():
    policy = DecisionPolicy(entry_threshold=0.6)
    assert direction_and_action(0.55, threshold=0.5, policy=policy)[0] == "UP"
    assert direction_and_action(0.55, threshold=0.5, policy=policy)[1].action == "FLAT"
    assert direction_and_action(0.55, threshold=0.58, policy=policy)[0] == "DOWN"
    direction, after = direction_and_action(0.3, threshold=0.5, policy=WITH_SHORT)
    assert (direction, after.action) == ("DOWN", "SHORT")
    held = PolicyState(side=1, size=1.0)
    assert direction_and_action(0.52, threshold=0.5, policy=policy, state=held)[1].action == "LONG"


# ----------------------------------------------------------------- state and many policies
def _random_policies(seed: int, n: int) -> list[DecisionPolicy]:
    rng = np.random.default_rng(seed)
    policies = []
    for _ in range(n):
        entry = float(rng.uniform(0.5, 0.65))
        short_exit = float(rng.uniform(0.4, 0.55))
        policies.append(
            DecisionPolicy(
                entry_threshold=entry,
                exit_threshold=float(rng.uniform(0.4, entry)),
                min_hold_bars=int(rng.integers(0, 8)),
                cooldown_bars=int(rng.integers(0, 8)),
                sizing=str(rng.choice(["fixed", "proba"])),  # type: ignore[arg-type]
                edge_scale=float(rng.uniform(1.0, 8.0)),
                allow_short=bool(rng.random() < 0.5),
                short_entry_threshold=float(rng.uniform(0.35, min(short_exit, entry - 0.01))),
                short_exit_threshold=short_exit,
                stay_flat=bool(rng.random() < 0.1),
            )
        )
    return policies


def _random_proba(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    proba = np.clip(0.5 + np.cumsum(rng.normal(0, 0.03, n)) * 0.3 + rng.normal(0, 0.05, n), 0, 1)
    proba[rng.random(n) < 0.05] = NAN
    return proba


@pytest.mark.parametrize("policy", _random_policies(11, 8))
def test_continuing_from_state_equals_one_long_run(policy):
    proba = _random_proba(4, 80)
    whole = positions_from_proba(proba, policy)
    for cut in range(len(proba) + 1):
        first = positions_from_proba(proba[:cut], policy)
        second = positions_from_proba(proba[cut:], policy, state=first.final_state)
        np.testing.assert_array_equal(np.r_[first.side, second.side], whole.side, f"cut {cut}")
        np.testing.assert_array_equal(np.r_[first.size, second.size], whole.size, f"cut {cut}")
        assert second.final_state == whole.final_state


def test_one_candle_at_a_time_equals_one_long_run():
    """The live bot's way: each new candle continues from the last tick's state."""
    policy = WITH_SHORT.model_copy(update={"min_hold_bars": 4, "cooldown_bars": 3})
    proba = _random_proba(5, 300)
    whole = positions_from_proba(proba, policy)
    state, sides = PolicyState(), []
    for p in proba:
        state = positions_from_proba([p], policy, state=state).final_state
        sides.append(state.side)
    assert sides == whole.side.tolist() and len(set(sides)) == 3


def test_positions_for_policies_equals_separate_runs():
    policies = _random_policies(7, 25)
    proba = _random_proba(8, 500)
    side, size = positions_for_policies(proba, policies)
    assert side.shape == size.shape == (500, 25)
    for j, policy in enumerate(policies):
        one = positions_from_proba(proba, policy)
        np.testing.assert_array_equal(side[:, j], one.side, f"policy {j}")
        np.testing.assert_array_equal(size[:, j], one.size, f"policy {j}")
    assert len({tuple(side[:, j]) for j in range(25)}) > 15  # the policies really differ


def test_positions_for_policies_takes_one_probability_column_per_policy():
    policies = _random_policies(9, 6)
    proba = np.column_stack([_random_proba(seed, 200) for seed in range(6)])
    side, size = positions_for_policies(proba, policies)
    for j, policy in enumerate(policies):
        one = positions_from_proba(proba[:, j], policy)
        np.testing.assert_array_equal(side[:, j], one.side)
        np.testing.assert_array_equal(size[:, j], one.size)


def test_positions_for_policies_rejects_a_mismatched_probability_matrix():
    with pytest.raises(ValueError, match=r"\(T,\) or \(T, 2\)"):
        positions_for_policies(np.full((10, 3), 0.5), [LONG_ONLY, WITH_SHORT])


def _reference(proba, policy: DecisionPolicy) -> tuple[list[int], list[float]]:
    """A plain-Python reading of the DecisionPolicy docstring, one candle at a time."""
    side, size, held, since = 0, 0.0, 0, 10**9
    sides, sizes = [], []
    for p in proba:
        if side:
            held += 1
        else:
            since += 1
        if side and held >= policy.min_hold_bars:
            keep = p >= policy.exit_threshold if side == 1 else p <= policy.short_exit_threshold
            if not keep:  # NaN compares False: no opinion leaves
                side, size, since = 0, 0.0, 0
        if not side and not policy.stay_flat and since >= policy.cooldown_bars:
            if p >= policy.entry_threshold:
                side = 1
            elif policy.allow_short and p <= policy.short_entry_threshold:
                side = -1
            if side:
                edge = min(1.0, policy.edge_scale * abs(2 * p - 1))
                size, held = (edge if policy.sizing == "proba" else 1.0), 0
        sides.append(side)
        sizes.append(size)
    return sides, sizes


@pytest.mark.parametrize("policy", _random_policies(13, 12))
def test_positions_from_proba_matches_a_plain_python_reference(policy):
    proba = _random_proba(6, 400)
    out = positions_from_proba(proba, policy)
    sides, sizes = _reference(proba, policy)
    assert out.side.tolist() == sides
    assert out.size.tolist() == pytest.approx(sizes, abs=1e-12)


def test_stay_flat_policy_closes_an_inherited_position_at_once():
    """A model whose validated policy is 'stay flat' must not keep the previous model's long."""
    held = PolicyState(side=1, size=1.0, bars_held=3)
    out = positions_from_proba([0.9, 0.9, 0.1], DecisionPolicy(stay_flat=True), state=held)
    assert out.side.tolist() == [0, 0, 0]
    assert out.final_state.side == 0
