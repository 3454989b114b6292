"""Model endpoints: required features, the current model's manifest, promotion."""

from __future__ import annotations

import logging
import time
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam

from api.deps import ApiKeyDep, PairDep, SessionDep, SettingsDep, StoreDep, WriteSessionDep
from api.queries import features_of, model_info
from api.schemas import (
    ERROR_RESPONSES,
    MODEL_ID_PATTERN,
    ErrorOut,
    FeaturesOut,
    ModelInfoOut,
    PromoteOut,
)
from ml.registry import current_model_id, promote_model, read_manifest
from storage.repository import add_model_event

logger = logging.getLogger(__name__)

router = APIRouter(tags=["models"])


@router.get("/features", response_model=FeaturesOut, responses=ERROR_RESPONSES)
def features(pair: PairDep, store: StoreDep) -> FeaturesOut:
    """Every feature the current model needs: name, description, group, training range."""
    return features_of(store.current(pair.symbol, pair.timeframe))


@router.get("/model/info", response_model=ModelInfoOut, responses=ERROR_RESPONSES)
def info(pair: PairDep, store: StoreDep, session: SessionDep) -> ModelInfoOut:
    """The current model's manifest and the latest backtest summary for it."""
    return model_info(session, store.current(pair.symbol, pair.timeframe))


@router.post(
    "/models/{model_id}/promote",
    response_model=PromoteOut,
    dependencies=[ApiKeyDep],
    responses={
        401: {"model": ErrorOut, "description": "Missing or wrong X-API-Key"},
        403: {"model": ErrorOut, "description": "No API key configured on the server"},
        404: {"model": ErrorOut, "description": "No such model"},
    },
)
def promote(
    model_id: Annotated[str, PathParam(max_length=200, pattern=MODEL_ID_PATTERN)],
    settings: SettingsDep,
    store: StoreDep,
    session: WriteSessionDep,
) -> PromoteOut:
    """Make a registry model the current one of its symbol/timeframe (needs `X-API-Key`)."""
    root = settings.ml.registry_dir
    manifest = read_manifest(root, model_id)
    previous = current_model_id(root, manifest.symbol, manifest.timeframe)
    add_model_event(
        session,
        created_ms=int(time.time() * 1000),
        symbol=manifest.symbol,
        timeframe=manifest.timeframe,
        model_id=model_id,
        previous_model_id=previous,
        event="promoted",
        reason="promoted through the REST API",
    )
    promote_model(root, model_id)
    store.forget(manifest.symbol, manifest.timeframe)
    logger.info("Promoted %s (previous %s) through the API", model_id, previous)
    return PromoteOut(
        model_id=model_id,
        symbol=manifest.symbol,
        timeframe=manifest.timeframe,
        previous_model_id=previous,
    )
