"""Retraining: when it is due, the promotion rule, and the recorded decision."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.deps import BotDeps
from bot.retrain import decide_promotion, is_retrain_due, maybe_retrain, retrain_market
from core.errors import TemporaryExchangeError
from core.settings import RetrainSettings
from ml.registry import ModelArtifact, current_model_id, promote_model, save_model
from storage.db import session_scope
from storage.repository import list_model_events
from tests.bot.conftest import FakeSource
from tests.conftest import log_has


def _with_retrain(make_deps: Callable[..., BotDeps], **retrain: object) -> BotDeps:
    return make_deps(bot={"retrain": RetrainSettings.model_validate(retrain)})


@pytest.mark.parametrize(
    ("new", "current", "promoted"),
    [
        (0.53, 0.52, True),  # better
        (0.515, 0.52, True),  # worse, within the allowed drop
        (0.50, 0.52, False),  # worse by more than the allowed drop
        (0.50, None, True),  # nothing to compare with
        (float("nan"), 0.52, False),  # the new model could not be scored
    ],
)
def test_decide_promotion_allows_a_small_drop_only(
    new: float, current: float | None, promoted: bool
) -> None:
    assert decide_promotion(new, current, max_metric_drop=0.01)[0] is promoted


def test_is_retrain_due_counts_from_model_and_last_decision(
    make_deps: Callable[..., BotDeps], artifact: ModelArtifact
) -> None:
    assert not is_retrain_due(make_deps(), "BTC/USDT", "1h", now=artifact.manifest.created_at)
    deps = _with_retrain(make_deps, every="7d")
    created = artifact.manifest.created_at
    assert not is_retrain_due(deps, "BTC/USDT", "1h", now=created + timedelta(days=6))
    assert is_retrain_due(deps, "BTC/USDT", "1h", now=created + timedelta(days=8))


def _promote_with_auc(deps: BotDeps, artifact: ModelArtifact, roc_auc: float) -> str:
    """Save a copy of the model whose manifest claims `roc_auc` and make it current."""
    summary = artifact.manifest.walk_forward
    assert summary is not None
    walk_forward = summary.model_copy(update={"metrics": {**summary.metrics, "roc_auc": roc_auc}})
    manifest = artifact.manifest.model_copy(update={"walk_forward": walk_forward})
    model_id = save_model(
        type(artifact)(artifact.estimator, manifest), deps.settings.ml.registry_dir
    )
    promote_model(deps.settings.ml.registry_dir, model_id)
    return model_id


def test_retrain_market_promotes_a_good_enough_model_and_records_it(
    make_deps: Callable[..., BotDeps], source: FakeSource, artifact: ModelArtifact
) -> None:
    deps = _with_retrain(make_deps, every="1d", max_metric_drop=0.5)
    previous = _promote_with_auc(deps, artifact, 0.51)
    decision = retrain_market(deps, "BTC/USDT", "1h", now=source.now)
    root = deps.settings.ml.registry_dir
    assert decision.promoted
    assert current_model_id(root, "BTC/USDT", "1h") == decision.model_id != previous
    with session_scope(deps.session_factory, read_only=True) as session:
        (event,) = list_model_events(session)
    assert (event.event, event.model_id, event.previous_model_id) == (
        "promoted",
        decision.model_id,
        previous,
    )
    assert event.metrics is not None and event.metrics["current_roc_auc"] == 0.51
    # the retrained model saw the candles up to the tick's last closed one
    train_end = deps.models.current("BTC/USDT", "1h").manifest.train_end
    assert source.now - timedelta(hours=3) <= train_end < source.now
    assert not is_retrain_due(deps, "BTC/USDT", "1h", now=source.now + timedelta(hours=23))


def test_retrain_market_rejects_a_worse_model(
    make_deps: Callable[..., BotDeps], source: FakeSource, artifact: ModelArtifact
) -> None:
    deps = _with_retrain(make_deps, every="1d", max_metric_drop=0.01)
    previous = _promote_with_auc(deps, artifact, 0.99)  # no honest model beats this
    decision = retrain_market(deps, "BTC/USDT", "1h", now=source.now)
    assert not decision.promoted
    assert current_model_id(deps.settings.ml.registry_dir, "BTC/USDT", "1h") == previous
    with session_scope(deps.session_factory, read_only=True) as session:
        (event,) = list_model_events(session)
    assert event.event == "rejected"
    assert "vs current 0.9900" in event.reason


def test_maybe_retrain_keeps_the_model_when_the_exchange_fails(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    artifact: ModelArtifact,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deps = _with_retrain(make_deps, every="1d")
    source.errors["BTC/USDT"] = [TemporaryExchangeError("429")]
    now = artifact.manifest.created_at + timedelta(days=2)
    assert maybe_retrain(deps, now=now) == []
    assert current_model_id(deps.settings.ml.registry_dir, "BTC/USDT", "1h") == artifact.model_id
    assert log_has(caplog, "Retraining BTC/USDT 1h failed", logging.ERROR)
