"""`GET /health`: the API's own health (database, current model) and the bot's state."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import PairDep, SettingsDep, StoreDep
from api.queries import health_report
from api.schemas import ErrorOut, HealthOut

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    responses={
        404: {"model": ErrorOut, "description": "Unknown symbol/timeframe pair"},
        503: {"model": HealthOut, "description": "Database or model unusable; see `reasons`"},
    },
)
def health(request: Request, pair: PairDep, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """200 when the database answers and a current model loads; 503 otherwise.

    The bot does not decide the status: `bot` is `absent`, `running`, `stale` (heartbeat too
    old: hung or killed) or `stopped`, so an API-only deployment is healthy.
    """
    store.check_known(pair.symbol, pair.timeframe)  # an unknown pair is the caller's error (404)
    report = health_report(
        engine=request.app.state.engine,
        session_factory=request.app.state.session_factory,
        store=store,
        settings=settings,
        pair=pair,
    )
    status = 200 if report.status == "ok" else 503
    return JSONResponse(report.model_dump(mode="json"), status_code=status)
