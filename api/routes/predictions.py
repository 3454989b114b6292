"""Prediction endpoints: one row of features, a batch of rows, or raw candles."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pydantic_core
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import Pair, PairDep, SettingsDep, StoreDep
from api.inputs import candles_frame, rows_from_arrow, rows_from_json
from api.models import LoadedModel
from api.schemas import (
    ARROW_STREAM,
    ERROR_RESPONSES,
    BatchPredictionOut,
    BatchRequest,
    CandlePredictionOut,
    CandlesRequest,
    ErrorOut,
    PredictionOut,
    PredictRequest,
)
from ml.predict import direction_of, predict_latest

logger = logging.getLogger(__name__)

router = APIRouter(tags=["predictions"])

_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": BatchRequest.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                ),
                "example": {"rows": [{"log_return_1": 0.0012, "rsi": 55.3}]},
            },
            ARROW_STREAM: {
                "schema": {"type": "string", "format": "binary"},
                "example": "<Arrow IPC stream: one float64 column per feature>",
            },
        },
    }
}


def _prediction(model: LoadedModel, pair: Pair, proba_up: float) -> PredictionOut:
    threshold = model.manifest.threshold
    return PredictionOut(
        direction=direction_of(proba_up, threshold),
        probability_up=proba_up,
        model_id=model.manifest.model_id,
        threshold=threshold,
        symbol=pair.symbol,
        timeframe=pair.timeframe,
    )


@router.post("/predict", response_model=PredictionOut, responses=ERROR_RESPONSES)
async def predict(body: PredictRequest, pair: PairDep, store: StoreDep) -> PredictionOut:
    """UP/DOWN and `probability_up` for one row of features (names from `GET /features`)."""
    model = store.current(pair.symbol, pair.timeframe)
    proba_up = float(model.proba_up(model.row_from_mapping(body.features))[0])
    return _prediction(model, pair, proba_up)


@router.post(
    "/predict/batch",
    response_model=BatchPredictionOut,
    responses={**ERROR_RESPONSES, 413: {"model": ErrorOut}, 415: {"model": ErrorOut}},
    openapi_extra=_BATCH_BODY,
)
async def predict_batch(
    request: Request, pair: PairDep, store: StoreDep, settings: SettingsDep
) -> Response:
    """Predictions for up to `api.max_batch_rows` rows, in order.

    Send JSON `{"rows": [{feature: value, ...}, ...]}`, or for large batches an Arrow IPC
    stream (`Content-Type: application/vnd.apache.arrow.stream`) with one numeric column per
    feature, which skips JSON number parsing.
    """
    model = store.current(pair.symbol, pair.timeframe)
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media_type not in ("application/json", ARROW_STREAM):
        raise HTTPException(
            status_code=415,
            detail=f"content-type {media_type!r}: send application/json or {ARROW_STREAM}",
        )
    parse = rows_from_arrow if media_type == ARROW_STREAM else rows_from_json
    body = await request.body()
    matrix = await run_in_threadpool(parse, body, model, max_rows=settings.api.max_batch_rows)
    proba_up = await run_in_threadpool(model.proba_up, matrix)
    return Response(content=batch_json(model, pair, proba_up), media_type="application/json")


def batch_json(model: LoadedModel, pair: Pair, proba_up: npt.NDArray[np.float64]) -> bytes:
    """The batch response serialised in one pass (10,000 small dicts, no model objects)."""
    threshold = model.manifest.threshold
    directions = np.where(proba_up >= threshold, "UP", "DOWN").tolist()
    return pydantic_core.to_json(
        {
            "model_id": model.manifest.model_id,
            "threshold": threshold,
            "symbol": pair.symbol,
            "timeframe": pair.timeframe,
            "count": len(directions),
            "predictions": [
                {"direction": d, "probability_up": p}
                for d, p in zip(directions, proba_up.tolist(), strict=True)
            ],
        }
    )


@router.post("/predict/candles", response_model=CandlePredictionOut, responses=ERROR_RESPONSES)
def predict_candles(
    body: CandlesRequest, store: StoreDep, settings: SettingsDep
) -> CandlePredictionOut:
    """Prediction for the last closed candle of posted ccxt candles (features built here).

    Send at least the model's warm-up length of contiguous candles, oldest first; a still
    forming newest candle is dropped.
    """
    pair = Pair(
        symbol=body.symbol or settings.data.symbol,
        timeframe=body.timeframe or settings.data.timeframe,
    )
    model = store.current(pair.symbol, pair.timeframe)
    candles, dropped = candles_frame(
        body.candles,
        timeframe=pair.timeframe,
        now=datetime.now(UTC),
        max_rows=settings.api.max_batch_rows,
    )
    prediction = predict_latest(model.artifact, candles)
    return CandlePredictionOut(
        **_prediction(model, pair, prediction.proba_up).model_dump(),
        candle_open=prediction.candle_open.to_pydatetime(),
        candle_close=prediction.candle_close.to_pydatetime(),
        horizon_bars=prediction.horizon_bars,
        candles_used=len(candles),
        dropped_forming_candle=dropped,
    )
