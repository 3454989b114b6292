"""Logged live predictions and their accuracy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from api.deps import PairDep, SessionDep, StoreDep
from api.queries import accuracy_report
from api.schemas import (
    ERROR_RESPONSES,
    MODEL_ID_PATTERN,
    AccuracyOut,
    PredictionPageOut,
    Symbol,
)
from api.summaries import to_logged
from core.timeframes import to_epoch_ms
from core.types import Timeframe
from storage.records import decode_cursor
from storage.repository import list_predictions

router = APIRouter(tags=["history"])


def _valid_cursor(cursor: str | None) -> str | None:
    if cursor is not None:
        decode_cursor(cursor)  # ValueError -> 422 naming the `cursor` parameter
    return cursor


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@router.get("/predictions", response_model=PredictionPageOut, responses=ERROR_RESPONSES)
def predictions(
    session: SessionDep,
    symbol: Annotated[Symbol | None, Query(description="filter; all symbols if omitted")] = None,
    timeframe: Annotated[Timeframe | None, Query(description="filter")] = None,
    since: Annotated[
        datetime | None,
        Query(description="only candles opened at or after this time (UTC if naive)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 100,
    cursor: Annotated[
        str | None,
        AfterValidator(_valid_cursor),
        Query(max_length=200, description="`next_cursor` of the previous page"),
    ] = None,
) -> PredictionPageOut:
    """Logged live predictions with outcomes, newest first, keyset-paginated."""
    since_utc = _as_utc(since)
    page = list_predictions(
        session,
        symbol=symbol,
        timeframe=timeframe,
        since_ms=None if since_utc is None else to_epoch_ms(since_utc),
        limit=limit,
        cursor=cursor,
    )
    return PredictionPageOut(
        items=[to_logged(item) for item in page.items], next_cursor=page.next_cursor
    )


@router.get("/accuracy", response_model=AccuracyOut, responses=ERROR_RESPONSES)
def accuracy(
    session: SessionDep,
    store: StoreDep,
    pair: PairDep,
    window: Annotated[
        int, Query(ge=1, le=10_000, description="rolling window (predictions)")
    ] = 100,
    last: Annotated[
        int, Query(ge=1, le=100_000, description="evaluate this many latest resolved predictions")
    ] = 5000,
    model_id: Annotated[
        str | None,
        Query(max_length=200, pattern=MODEL_ID_PATTERN, description="default: the current model"),
    ] = None,
) -> AccuracyOut:
    """Rolling and overall live accuracy vs the model's walk-forward and backtest accuracy."""
    return accuracy_report(
        session,
        store,
        symbol=pair.symbol,
        timeframe=pair.timeframe,
        window=window,
        last=last,
        model_id=model_id,
    )
