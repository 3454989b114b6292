"""The one promotion: point a market at a model AND record the audit event, for every caller.

`cryptopred models promote`, `cryptopred train --promote`, `POST /models/{id}/promote` and the
bot's retrainer all call `promote`, so each leaves the same `model_events` row ("promoted",
the previous model, who did it and why) next to the registry pointer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.settings import Settings
from ml.registry import current_model_id, promote_model, read_manifest
from storage.db import SessionFactory, init_db, make_engine, make_session_factory, session_scope
from storage.repository import add_model_event

logger = logging.getLogger(__name__)

Actor = Literal["cli", "api", "retrainer"]
"""Who promoted: the audit event's reason starts with it."""

ACTOR_TEXT: dict[Actor, str] = {
    "cli": "promoted with the cryptopred CLI",
    "api": "promoted through the REST API",
    "retrainer": "promoted by the bot's retraining",
}


@dataclass(frozen=True, slots=True)
class Promotion:
    """A model made current, the model it replaced and the audit event's id."""

    model_id: str
    symbol: str
    timeframe: str
    previous_model_id: str | None
    event_id: int


def promote(
    registry_dir: Path,
    session_factory: SessionFactory,
    model_id: str,
    *,
    actor: Actor,
    reason: str | None = None,
    metrics: dict[str, Any] | None = None,
    now_ms: int | None = None,
) -> Promotion:
    """Make `model_id` the current model of its market and record a "promoted" event.

    The event is written in the same transaction that is committed after the pointer moved:
    if the pointer cannot be written nothing is recorded, and if the database refuses the
    event the pointer was not moved yet.

    Raises:
        ModelNotFoundError: no such model in the registry.
        StorageError: the audit event could not be written (the pointer is unchanged).
    """
    manifest = read_manifest(registry_dir, model_id)
    previous = current_model_id(registry_dir, manifest.symbol, manifest.timeframe)
    text = ACTOR_TEXT[actor] if reason is None else f"{ACTOR_TEXT[actor]}: {reason}"
    with session_scope(session_factory, operation=f"record the promotion of {model_id}") as session:
        event_id = add_model_event(
            session,
            created_ms=int(time.time() * 1000) if now_ms is None else now_ms,
            symbol=manifest.symbol,
            timeframe=manifest.timeframe,
            model_id=model_id,
            previous_model_id=previous,
            event="promoted",
            reason=text,
            metrics=metrics,
        )
        session.flush()
        promote_model(registry_dir, model_id)
    logger.info("Promoted %s (previous %s): %s", model_id, previous, text)
    return Promotion(model_id, manifest.symbol, manifest.timeframe, previous, event_id)


def promote_with_settings(
    settings: Settings, model_id: str, *, actor: Actor, reason: str | None = None
) -> Promotion:
    """`promote` for a command-line process: opens (and migrates) the configured database."""
    engine = make_engine(settings.storage.db_url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        init_db(engine)
        return promote(
            settings.ml.registry_dir,
            make_session_factory(engine),
            model_id,
            actor=actor,
            reason=reason,
        )
    finally:
        engine.dispose()
