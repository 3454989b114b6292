"""The `decision` section, the moved `ml.signal` key and the training view of `ml`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from core.errors import ConfigError
from core.settings import DecisionPolicy, DecisionSettings, Settings, load_settings


def test_old_signal_key_fails_with_the_new_keys_named(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("ml:\n  signal:\n    long_threshold: 0.6\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert "decision.policy" in message
    assert "long_threshold -> entry_threshold" in message


def test_policy_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="exit_threshold must be <= entry_threshold"):
        DecisionPolicy(entry_threshold=0.52, exit_threshold=0.55)
    with pytest.raises(ValidationError, match="short_entry_threshold must be <="):
        DecisionPolicy(short_entry_threshold=0.5, short_exit_threshold=0.45)


def test_pbo_blocks_must_be_even() -> None:
    with pytest.raises(ValidationError, match="even"):
        DecisionSettings(pbo_blocks=15)


def test_ml_for_training_ties_the_deadband_to_the_round_trip_cost() -> None:
    settings = Settings.model_validate(
        {
            "ml": {"labels": {"deadband_from_costs": True}},
            "strategy": {"fee_rate": 0.001, "slippage_bps": 5.0},
        }
    )
    labels = settings.ml_for_training().labels
    assert labels.deadband == pytest.approx(2 * (0.001 + 0.0005))
    assert settings.ml.labels.deadband == 0.0  # the configured section is untouched


def test_ml_for_training_widens_the_purge_gap_to_the_horizon() -> None:
    ml = Settings().ml_for_training(horizon_bars=24)
    assert ml.labels.horizon_bars == 24
    assert ml.walk_forward.gap_bars >= 24


def test_deadband_and_deadband_from_costs_are_exclusive() -> None:
    with pytest.raises(ValidationError, match="not both"):
        Settings.model_validate({"ml": {"labels": {"deadband": 0.01, "deadband_from_costs": True}}})


def test_old_signal_key_names_every_new_key_and_the_fixed_mode(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("ml:\n  signal:\n    short_threshold: 0.4\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    message = str(caught.value)
    assert "decision.mode: fixed" in message
    for old, new in [
        ("long_threshold", "entry_threshold"),
        ("exit_threshold", "exit_threshold"),
        ("short_threshold", "short_entry_threshold"),
        ("allow_short", "allow_short"),
    ]:
        assert f"{old} -> {new}" in message


@pytest.mark.parametrize(
    ("decision", "match"),
    [
        (
            {"policy": {"allow_short": True, "entry_threshold": 0.5, "short_entry_threshold": 0.5}},
            "below entry_threshold",
        ),
        ({"policy": {"min_hold_bars": -1}}, r"decision\.policy\.min_hold_bars"),
        ({"policy": {"sizing": "kelly"}}, r"decision\.policy\.sizing"),
        ({"grid": {"min_hold_bars": []}}, "min_hold_bars must list at least one value"),
        ({"mode": "hindsight"}, r"decision\.mode"),
    ],
)
def test_bad_decision_settings_fail_naming_the_key(
    tmp_path: Path, decision: dict[str, object], match: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"decision": decision}), encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_settings(config, environ={})


def test_decision_defaults_are_auto_with_the_old_fixed_rule_as_policy() -> None:
    decision = Settings().decision
    assert decision.mode == "auto"
    policy = decision.policy
    assert (policy.entry_threshold, policy.exit_threshold) == (0.55, 0.50)
    assert (policy.min_hold_bars, policy.cooldown_bars, policy.sizing) == (0, 0, "fixed")
    assert not policy.allow_short and not policy.stay_flat


def test_a_grid_without_any_usable_policy_is_refused() -> None:
    with pytest.raises(ValidationError, match="no usable policy"):
        DecisionSettings.model_validate(
            {"grid": {"entry_threshold": [0.5], "exit_threshold": [0.45], "allow_short": [True]}}
        )
    with pytest.raises(ValidationError, match="no usable policy"):
        DecisionSettings.model_validate(
            {"grid": {"entry_threshold": [0.52], "exit_threshold": [0.55]}}
        )
