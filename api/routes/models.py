"""Model endpoints: required features, the current model's manifest, promotion."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam

from api.deps import ApiKeyDep, PairDep, SessionDep, SettingsDep, StoreDep
from api.queries import features_of, model_info
from api.schemas import (
    ERROR_RESPONSES,
    MODEL_ID_PATTERN,
    ErrorOut,
    FeaturesOut,
    ModelInfoOut,
    PromoteOut,
)
from serving.promotion import promote as promote_and_record

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
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
) -> PromoteOut:
    """Make a registry model the current one of its symbol/timeframe (needs `X-API-Key`).

    Records a "promoted" model event, as `cryptopred models promote` and the retrainer do.
    """
    root, sessions = settings.ml.registry_dir, request.app.state.session_factory
    done = promote_and_record(root, sessions, model_id, actor="api")
    store.forget(done.symbol, done.timeframe)
    return PromoteOut(
        model_id=done.model_id,
        symbol=done.symbol,
        timeframe=done.timeframe,
        previous_model_id=done.previous_model_id,
    )
