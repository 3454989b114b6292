"""The decision policy in live use: which policy trades, the state rebuilt from logged
decisions, and single-row actions from flat."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from core.settings import DecisionPolicy, DecisionSettings
from ml.decision import (
    NO_VALIDATED_POLICY,
    PolicyState,
    action_from_flat,
    actions_from_flat,
    history_bars_needed,
    live_policy,
    log_live_policy,
    positions_from_proba,
    state_from_history,
)
from ml.registry import ValidatedPolicy
from tests.conftest import log_has

POLICIES = [
    DecisionPolicy(),
    DecisionPolicy(entry_threshold=0.52, exit_threshold=0.45, min_hold_bars=4, cooldown_bars=3),
    DecisionPolicy(min_hold_bars=6, sizing="proba", edge_scale=8.0),
    DecisionPolicy(
        entry_threshold=0.53,
        exit_threshold=0.5,
        allow_short=True,
        short_entry_threshold=0.47,
        short_exit_threshold=0.5,
        cooldown_bars=2,
        sizing="proba",
    ),
    DecisionPolicy(allow_short=True, short_entry_threshold=0.48, short_exit_threshold=0.48),
    DecisionPolicy(stay_flat=True),
]
VALIDATED = ValidatedPolicy(
    policy=DecisionPolicy(entry_threshold=0.6, exit_threshold=0.45, min_hold_bars=12),
    chosen_by="nested walk-forward, net log growth",
    n_candidates=37,
)


def _proba(seed: int, n: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    proba = np.clip(0.5 + 0.03 * np.cumsum(rng.normal(0, 0.3, n)) % 0.2 - 0.1, 0, 1)
    proba = np.clip(proba + rng.normal(0, 0.04, n), 0, 1)
    proba[rng.random(n) < 0.03] = np.nan  # "no opinion" now and then
    return proba


@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
@pytest.mark.parametrize("seed", range(4))
def test_state_from_history_is_the_final_state(policy: DecisionPolicy, seed: int) -> None:
    proba = _proba(seed)
    for end in range(1, len(proba) + 1, 7):
        out = positions_from_proba(proba[:end], policy)
        assert state_from_history(out.side.tolist(), out.size.tolist()) == out.final_state


@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
@pytest.mark.parametrize("seed", range(4))
def test_state_from_a_short_window_continues_like_the_whole_history(
    policy: DecisionPolicy, seed: int
) -> None:
    """The live bot reads only `history_bars_needed` logged decisions before each tick."""
    proba = _proba(seed)
    whole = positions_from_proba(proba, policy)
    window = history_bars_needed(policy)
    for cut in range(1, len(proba) - 1, 6):
        earlier = slice(max(0, cut - window), cut)
        state = state_from_history(whole.side[earlier].tolist(), whole.size[earlier].tolist())
        rest = positions_from_proba(proba[cut:], policy, state=state)
        np.testing.assert_array_equal(rest.side, whole.side[cut:])
        np.testing.assert_array_equal(rest.size, whole.size[cut:])


def test_state_from_history_counts_holds_exits_and_flips() -> None:
    assert state_from_history([], []) == PolicyState()
    never = PolicyState().bars_since_exit
    assert state_from_history([0, 0], [0.0, 0.0]) == PolicyState(bars_since_exit=never)
    assert state_from_history([0, 1, 1], [0.0, 0.7, 0.7]) == PolicyState(1, 0.7, 1, never)
    assert state_from_history([1, 1, 0, 0, 0], [1.0] * 2 + [0.0] * 3).bars_since_exit == 2
    assert state_from_history([1, 1, -1], [1.0, 1.0, 0.4]) == PolicyState(-1, 0.4, 0, 0)
    with pytest.raises(ValueError, match="sizes"):
        state_from_history([0, 1], [0.0])
    with pytest.raises(ValueError, match="-1, 0 or 1"):
        state_from_history([2], [1.0])


@pytest.mark.parametrize("policy", POLICIES, ids=range(len(POLICIES)))
def test_actions_from_flat_are_one_step_of_positions_from_proba(policy: DecisionPolicy) -> None:
    grid = np.linspace(0.0, 1.0, 201)
    thresholds = [policy.entry_threshold, policy.short_entry_threshold, policy.exit_threshold]
    proba = np.concatenate([grid, thresholds, np.nextafter(thresholds, 0.0), [np.nan]])
    sides, sizes = actions_from_flat(proba, policy)
    for value, side, size in zip(proba, sides, sizes, strict=True):
        single = positions_from_proba([value], policy)
        assert (side, size) == (single.side[0], single.size[0])
        assert action_from_flat(float(value), policy) == (single.side[0], single.size[0])


def test_live_policy_trades_the_manifest_policy_unless_configured() -> None:
    config = DecisionPolicy(entry_threshold=0.58)
    from_manifest = live_policy(VALIDATED, DecisionSettings(policy=config))
    assert (from_manifest.policy, from_manifest.source) == (VALIDATED.policy, "manifest")
    assert from_manifest.validated == VALIDATED
    overridden = live_policy(VALIDATED, DecisionSettings(policy=config, live_policy="config"))
    assert (overridden.policy, overridden.source) == (config, "config")
    assert overridden.validated == VALIDATED  # still shown as evidence
    fallback = live_policy(None, DecisionSettings(policy=config))
    assert (fallback.policy, fallback.source) == (config, NO_VALIDATED_POLICY)
    assert fallback.source == "config (model has no validated policy)"


def test_log_live_policy_warns_when_the_model_has_no_validated_policy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    log_live_policy("BTC/USDT 1h", "m1", live_policy(VALIDATED, DecisionSettings()))
    expected = "m1 trades the validated (manifest) decision policy: long at p_up >= 0.60"
    assert log_has(caplog, expected + ", exit below 0.45, hold >= 12 bars", logging.INFO)
    log_live_policy("BTC/USDT 1h", "m2", live_policy(None, DecisionSettings()))
    assert log_has(caplog, "model m2 has no validated decision policy", logging.WARNING)
    overridden = live_policy(VALIDATED, DecisionSettings(live_policy="config"))
    log_live_policy("BTC/USDT 1h", "m3", overridden)
    assert log_has(caplog, "model m3 trades the configured (decision.policy)", logging.INFO)
