"""Optional periodic retraining: train on the latest candles, promote only if not worse."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

from bot.deps import BotDeps
from core.errors import DataError, ExchangeError, ModelError
from core.timeframes import last_closed_candle_open, to_epoch_ms
from data.candles import download_candles
from ml.registry import ModelManifest
from ml.workflow import train_model
from serving.promotion import promote
from storage.db import session_scope
from storage.repository import add_model_event, list_model_events

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetrainDecision:
    """A retrained model and whether it replaced the current one."""

    symbol: str
    timeframe: str
    model_id: str
    previous_model_id: str
    promoted: bool
    new_roc_auc: float
    current_roc_auc: float | None
    reason: str


def decide_promotion(
    new_roc_auc: float, current_roc_auc: float | None, *, max_metric_drop: float
) -> tuple[bool, str]:
    """Promote unless the walk-forward ROC-AUC falls by more than `max_metric_drop`.

    >>> decide_promotion(0.52, 0.525, max_metric_drop=0.01)
    (True, 'walk-forward ROC-AUC 0.5200 vs current 0.5250 (-0.0050, allowed drop 0.0100)')
    >>> decide_promotion(0.50, 0.53, max_metric_drop=0.01)[0]
    False
    """
    if not math.isfinite(new_roc_auc):
        return False, "the retrained model has no finite walk-forward ROC-AUC"
    if current_roc_auc is None or not math.isfinite(current_roc_auc):
        return True, f"walk-forward ROC-AUC {new_roc_auc:.4f}; the current model has none"
    change = new_roc_auc - current_roc_auc
    reason = (
        f"walk-forward ROC-AUC {new_roc_auc:.4f} vs current {current_roc_auc:.4f} "
        f"({change:+.4f}, allowed drop {max_metric_drop:.4f})"
    )
    return -change <= max_metric_drop, reason


def walk_forward_roc_auc(manifest: ModelManifest) -> float | None:
    """The out-of-sample ROC-AUC recorded in a manifest, if any."""
    return manifest.walk_forward.metric("roc_auc") if manifest.walk_forward else None


def is_retrain_due(deps: BotDeps, symbol: str, timeframe: str, *, now: datetime) -> bool:
    """True when `bot.retrain.every` has passed since the current model was made and since the
    last retraining decision (a rejected model is not retried at every tick)."""
    every = deps.settings.bot.retrain.every
    if every is None:
        return False
    artifact = deps.models.current(symbol, timeframe).artifact
    last_ms = to_epoch_ms(artifact.manifest.created_at)
    operation = f"read {symbol} {timeframe} model events"
    with session_scope(deps.session_factory, operation=operation, read_only=True) as session:
        events = list_model_events(session, symbol=symbol, timeframe=timeframe, limit=1)
    if events:
        last_ms = max(last_ms, events[0].created_ms)
    return to_epoch_ms(now) - last_ms >= every.total_seconds() * 1000


def retrain_market(deps: BotDeps, symbol: str, timeframe: str, *, now: datetime) -> RetrainDecision:
    """Train like `cryptopred train` on candles up to `now`; promote if good enough; record it."""
    settings = deps.settings
    current = deps.models.current(symbol, timeframe).artifact
    prepared = download_candles(
        deps.source,
        symbol=symbol,
        timeframe=timeframe,
        since=settings.data.since,
        until=last_closed_candle_open(now, timeframe),
        cfg=settings.data,
    )
    outcome = train_model(
        prepared.frame,
        settings,
        symbol=symbol,
        timeframe=timeframe,
        algorithm=settings.ml.model.algorithm,
    )
    new_auc = float(outcome.walk_forward.metrics.roc_auc)
    current_auc = walk_forward_roc_auc(current.manifest)
    max_drop = settings.bot.retrain.max_metric_drop
    promoted, reason = decide_promotion(new_auc, current_auc, max_metric_drop=max_drop)
    decision = RetrainDecision(
        symbol,
        timeframe,
        outcome.model_id,
        current.model_id,
        promoted,
        new_auc,
        current_auc,
        reason,
    )
    record_decision(deps, decision, now=now, accuracy=float(outcome.walk_forward.metrics.accuracy))
    logger.info(
        "Retrained %s %s: %s %s (%s)",
        symbol,
        timeframe,
        outcome.model_id,
        "promoted" if promoted else "rejected, current model kept",
        reason,
    )
    return decision


def record_decision(
    deps: BotDeps, decision: RetrainDecision, *, now: datetime, accuracy: float
) -> None:
    """A promotion through `serving.promotion.promote` (pointer + event), else a "rejected"
    event; both carry the metrics the decision compared."""
    metrics = {
        "roc_auc": decision.new_roc_auc,
        "accuracy": accuracy,
        "current_roc_auc": decision.current_roc_auc,
        "max_metric_drop": deps.settings.bot.retrain.max_metric_drop,
    }
    if decision.promoted:
        promote(
            deps.settings.ml.registry_dir,
            deps.session_factory,
            decision.model_id,
            actor="retrainer",
            reason=decision.reason,
            metrics=metrics,
            now_ms=to_epoch_ms(now),
        )
        return
    with session_scope(deps.session_factory, operation="record a model event") as session:
        add_model_event(
            session,
            created_ms=to_epoch_ms(now),
            symbol=decision.symbol,
            timeframe=decision.timeframe,
            model_id=decision.model_id,
            event="rejected",
            reason=decision.reason,
            previous_model_id=decision.previous_model_id,
            metrics=metrics,
        )


def maybe_retrain(deps: BotDeps, *, now: datetime) -> list[RetrainDecision]:
    """Retrain every market that is due; a failure keeps the current model and is logged."""
    decisions = []
    for timeframe in deps.settings.bot.timeframes:
        for symbol in deps.settings.bot.symbols:
            if not is_retrain_due(deps, symbol, timeframe, now=now):
                continue
            try:
                decisions.append(retrain_market(deps, symbol, timeframe, now=now))
            except (ExchangeError, DataError, ModelError) as e:
                logger.error(
                    "Retraining %s %s failed (%s: %s); the current model stays",
                    symbol,
                    timeframe,
                    type(e).__name__,
                    e,
                )
    return decisions
