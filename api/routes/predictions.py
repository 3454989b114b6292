"""Prediction endpoints: one row of features, a batch of rows, or raw candles."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pydantic_core
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.arrow_input import rows_from_arrow
from api.batch_body import BATCH_PATH, batch_body_limit, read_body
from api.deps import Pair, pair_of, settings_of, store_of
from api.inputs import (
    JSON_TYPE,
    candles_body,
    candles_frame,
    media_type_of,
    pair_query,
    predict_body,
    rows_from_json,
)
from api.outputs import batch_arrow, batch_json
from api.schemas import (
    ARROW_STREAM,
    ERROR_RESPONSES,
    BatchPredictionOut,
    BatchRequest,
    CandlePredictionOut,
    CandlesRequest,
    ErrorOut,
    PairQuery,
    PredictionOut,
    PredictRequest,
)
from ml.decision import ACTIONS, PolicyState, positions_from_proba
from ml.predict import direction_of, predict_history, predict_latest, required_candles
from serving.models import ServedModel

logger = logging.getLogger(__name__)

router = APIRouter(tags=["predictions"])


def _query_parameters() -> list[dict[str, Any]]:
    """OpenAPI entries of `PairQuery` (the hot routes parse their query themselves)."""
    properties = PairQuery.model_json_schema()["properties"]
    return [
        {"name": name, "in": "query", "required": False, "schema": schema,
         "description": schema.get("description", "")}
        for name, schema in properties.items()
    ]  # fmt: skip


def _body_doc(model: type[BaseModel], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    content = {JSON_TYPE: {"schema": schema, "example": schema["examples"][0]}, **(extra or {})}
    return {
        "parameters": _query_parameters(),
        "requestBody": {"required": True, "content": content},
    }


_ARROW_DOC = {
    ARROW_STREAM: {
        "schema": {"type": "string", "format": "binary"},
        "example": "<Arrow IPC stream: one float64 column per feature>",
    }
}


def _json_response(payload: dict[str, Any]) -> Response:
    return Response(pydantic_core.to_json(payload), media_type=JSON_TYPE)


def _prediction(
    model: ServedModel, pair: Pair, proba_up: float, *, state: PolicyState | None = None
) -> dict[str, Any]:
    """The direction at the model's threshold and, separately, the policy's action: after
    `state` (the position over the history), else from flat."""
    threshold = model.manifest.threshold
    side, size = model.action_from_flat(proba_up) if state is None else (state.side, state.size)
    return {
        "direction": direction_of(proba_up, threshold),
        "proba_up": proba_up,
        "model_id": model.manifest.model_id,
        "threshold": threshold,
        "symbol": pair.symbol,
        "timeframe": pair.timeframe,
        "action": ACTIONS[side],
        "size": size,
        "policy": model.policy_json,
    }


def _model_for(request: Request) -> tuple[ServedModel, Pair]:
    query = pair_query(request)
    pair = pair_of(request, query.symbol, query.timeframe)
    return store_of(request).current(pair.symbol, pair.timeframe), pair


# `/predict` and `/predict/batch` read their query and body themselves (documented through
# `openapi_extra`): FastAPI's generic parameter and body handling cost more per request than
# the whole compiled prediction (benchmarks/api_predict.py), and Pydantic's Rust JSON parser
# validates in one pass where `json.loads` would also accept NaN literals.
@router.post(
    "/predict",
    response_model=PredictionOut,
    responses={**ERROR_RESPONSES, 415: {"model": ErrorOut}},
    openapi_extra=_body_doc(PredictRequest),
)
async def predict(request: Request) -> Response:
    """UP/DOWN and `proba_up` for one row of features (names from `GET /features`),
    and the decision policy's action.

    `direction` is the model's call at its classification threshold; `action` (LONG, FLAT or
    SHORT) and `size` are what the policy does with this probability **from flat** (no
    position, no minimum hold or cooldown in force); for the action given history use
    `/predict/candles`. `policy` names the policy and its source.
    """
    media_type_of(request, accepted=(JSON_TYPE,))
    body = predict_body(await request.body())
    model, pair = _model_for(request)
    proba_up = model.proba_up_one(body.features)
    return _json_response(_prediction(model, pair, proba_up))


@router.post(
    BATCH_PATH,
    response_model=BatchPredictionOut,
    responses={
        **ERROR_RESPONSES,
        200: {"content": {ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}}},
        413: {"model": ErrorOut},
        415: {"model": ErrorOut},
    },
    openapi_extra=_body_doc(BatchRequest, _ARROW_DOC),
)
async def predict_batch(request: Request) -> Response:
    """Predictions for up to `api.max_batch_rows` rows, in order.

    Each row carries `direction` (the model's call) and the policy's `action` and `size`
    for that row **from flat** (rows are independent; for the action given history use
    `/predict/candles`). Send JSON `{"rows": [{feature: value, ...}, ...]}`, or for large
    batches an Arrow IPC stream (`Content-Type: application/vnd.apache.arrow.stream`) with one
    numeric column per feature, which skips JSON number parsing. With
    `Accept: application/vnd.apache.arrow.stream`
    the answer is an Arrow stream too (columns `proba_up`, `direction`, `action`,
    `size`; the model id, threshold, symbol, timeframe and policy in its schema metadata).
    """
    media_type = media_type_of(request, accepted=(JSON_TYPE, ARROW_STREAM))
    answer_type = ARROW_STREAM if ARROW_STREAM in request.headers.get("accept", "") else JSON_TYPE
    model, pair = _model_for(request)
    api = settings_of(request).api
    max_bytes = batch_body_limit(api, model.feature_names, arrow=media_type == ARROW_STREAM)
    body = await read_body(request, max_bytes=max_bytes)
    content = await run_in_threadpool(
        _predict_rows, body, model, pair, rows_arrow=media_type == ARROW_STREAM,
        answer_arrow=answer_type == ARROW_STREAM, max_rows=api.max_batch_rows,
        max_bytes=max_bytes,
    )  # fmt: skip
    return Response(content=content, media_type=answer_type)


def _predict_rows(
    body: bytes,
    model: ServedModel,
    pair: Pair,
    *,
    rows_arrow: bool,
    answer_arrow: bool,
    max_rows: int,
    max_bytes: int,
) -> bytes:
    """Parse, score and encode a batch in one worker-thread hop."""
    if rows_arrow:
        rows = rows_from_arrow(body, model, max_rows=max_rows, max_bytes=max_bytes)
    else:
        rows = rows_from_json(body, model, max_rows=max_rows)
    proba_up = model.proba_up(rows)
    header = {
        "model_id": model.manifest.model_id,
        "threshold": model.manifest.threshold,
        "symbol": pair.symbol,
        "timeframe": pair.timeframe,
        "policy": model.policy_json,
    }
    sides, sizes = model.actions_from_flat(proba_up)
    encode = batch_arrow if answer_arrow else batch_json
    return encode(header, proba_up, model.manifest.threshold, sides=sides, sizes=sizes)


@router.post(
    "/predict/candles",
    response_model=CandlePredictionOut,
    responses={**ERROR_RESPONSES, 415: {"model": ErrorOut}},
    openapi_extra={"requestBody": _body_doc(CandlesRequest)["requestBody"]},
)
async def predict_candles(request: Request) -> CandlePredictionOut:
    """Prediction for the last closed candle of posted ccxt candles (features built here).

    Send at least the model's warm-up length of contiguous candles, oldest first; a still
    forming newest candle is dropped. `direction` is the model's call for the last candle;
    `action`, `size` and `bars_held` are the decision policy's position after running over
    the probabilities of every posted candle past the warm-up, starting flat, as the live
    bot and the backtest do (minimum holds, cooldowns and entry sizes apply). The body is
    parsed like `/predict`'s (same messages).
    """
    media_type_of(request, accepted=(JSON_TYPE,))
    body = candles_body(await request.body())
    settings = settings_of(request)
    pair = Pair(
        symbol=body.symbol or settings.data.symbol,
        timeframe=body.timeframe or settings.data.timeframe,
    )
    model = store_of(request).current(pair.symbol, pair.timeframe)
    return await run_in_threadpool(
        _predict_candles, body, model, pair, max_rows=settings.api.max_batch_rows
    )


def _predict_candles(
    body: CandlesRequest, model: ServedModel, pair: Pair, *, max_rows: int
) -> CandlePredictionOut:
    """Features from the candles and the prediction for the last closed one (worker thread)."""
    candles, dropped = candles_frame(
        body.candles, timeframe=pair.timeframe, now=datetime.now(UTC), max_rows=max_rows
    )
    prediction = predict_latest(model.artifact, candles)
    state = position_after(model, candles, prediction.proba_up)
    return CandlePredictionOut(
        **_prediction(model, pair, prediction.proba_up, state=state),
        candle_open=prediction.candle_open.to_pydatetime(),
        candle_close=prediction.candle_close.to_pydatetime(),
        horizon_bars=prediction.horizon_bars,
        candles_used=len(candles),
        dropped_forming_candle=dropped,
        bars_held=state.bars_held if state.side else 0,
    )


def position_after(model: ServedModel, candles: pd.DataFrame, proba_up: float) -> PolicyState:
    """The policy's state after the posted candles: `positions_from_proba` over every candle
    with a full feature warm-up behind it (the candles the bot would predict), from flat.

    The newest probability is `proba_up`, the value the response shows.
    """
    needed = required_candles(model.artifact)
    decided = pd.DatetimeIndex(candles.index[needed - 1 :])
    proba = predict_history(model.artifact, candles).reindex(decided).to_numpy(copy=True)
    proba[-1] = proba_up  # missing values are NaN: "no opinion" for the policy
    return positions_from_proba(proba, model.policy.policy).final_state
