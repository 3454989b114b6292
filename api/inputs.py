"""Decoding of prediction request bodies into model-ordered arrays or candle frames.

The prediction routes parse their own bodies: Pydantic's Rust JSON parser validates 10,000
rows in one pass (FastAPI's default would run Python's `json.loads`, which also accepts `NaN`),
and an Arrow IPC stream body (`api.arrow_input`) skips number parsing entirely. Both paths
enforce the same rules: finite numbers only, exactly the model's features,
1..`api.max_batch_rows` rows.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from operator import itemgetter
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from api.schemas import BatchRequest, Candle, CandlesRequest, PairQuery, PredictRequest
from core.echo import echo_value
from core.errors import DataValidationError
from core.timeframes import last_closed_candle_open
from data.quality import find_gaps
from data.schema import frame_from_rows, validate_ohlcv
from serving.models import ServedModel, check_feature_names

logger = logging.getLogger(__name__)

_BATCH = TypeAdapter(BatchRequest)
_PREDICT = TypeAdapter(PredictRequest)
_CANDLES = TypeAdapter(CandlesRequest)
_NO_QUERY = PairQuery()
Matrix = npt.NDArray[np.float64]
JSON_TYPE = "application/json"
T = TypeVar("T")


def media_type_of(request: Request, *, accepted: Collection[str]) -> str:
    """The request's media type (JSON when absent); 415 unless it is one of `accepted`."""
    media_type = request.headers.get("content-type", JSON_TYPE).split(";")[0].strip().lower()
    if media_type not in accepted:
        raise HTTPException(
            status_code=415,
            detail=f"content-type {echo_value(media_type)} is not supported; "
            f"send {' or '.join(accepted)}",
        )
    return media_type


def validate_json(adapter: TypeAdapter[T], body: bytes, *, location: str = "body") -> T:
    """Validate raw JSON in one pass with Pydantic's Rust parser (NaN/Infinity rejected by name).

    Raises:
        RequestValidationError: the same 422 FastAPI gives, each error located under `location`.
    """
    try:
        return adapter.validate_json(body)
    except ValidationError as e:
        raise _located(e, location) from e


def pair_query(request: Request) -> PairQuery:
    """The validated `symbol`/`timeframe` query parameters of a request."""
    if not request.scope.get("query_string"):
        return _NO_QUERY
    try:
        return PairQuery.model_validate(dict(request.query_params))
    except ValidationError as e:
        raise _located(e, "query") from e


def _located(error: ValidationError, location: str) -> RequestValidationError:
    errors = error.errors(include_url=False, include_input=False)
    return RequestValidationError([{**item, "loc": (location, *item["loc"])} for item in errors])


def predict_body(body: bytes) -> PredictRequest:
    """The `/predict` body, validated."""
    return validate_json(_PREDICT, body)


def candles_body(body: bytes) -> CandlesRequest:
    """The `/predict/candles` body, validated like `/predict` (same parser, same messages)."""
    return validate_json(_CANDLES, body)


def check_row_count(n_rows: int, max_rows: int, *, what: str = "rows") -> None:
    """Raise a 422 for an empty batch or one over `max_rows` (api.max_batch_rows)."""
    if n_rows == 0:
        raise HTTPException(status_code=422, detail=f"{what}: empty batch; send at least one row")
    if n_rows > max_rows:
        raise HTTPException(
            status_code=422,
            detail=f"{what}: {n_rows} rows is over the limit of {max_rows} "
            "(api.max_batch_rows); split the batch",
        )


def rows_from_json(body: bytes, model: ServedModel, *, max_rows: int) -> Matrix:
    """A (n, n_features) matrix from `{"rows": [{name: value, ...}, ...]}`.

    Raises:
        RequestValidationError: invalid JSON, a non-number, NaN/Infinity (field named).
        HTTPException: 422 for an empty or oversized batch.
        FeatureMismatchError: a row lacks features or has unknown ones (row and names given).
    """
    rows = validate_json(_BATCH, body).rows
    check_row_count(len(rows), max_rows)
    expected = model.feature_index.keys()
    for number, row in enumerate(rows):
        if row.keys() != expected:
            check_feature_names(model, list(row), where=f"rows[{number}]: ")
    values = itemgetter(*model.feature_names)  # one C-level lookup of every feature per row
    return np.array([values(row) for row in rows], dtype=np.float64).reshape(len(rows), -1)


def check_finite(matrix: Matrix, names: Sequence[str]) -> None:
    """Raise `DataValidationError` naming the first NaN/Infinity (row and feature)."""
    finite = np.isfinite(matrix)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise DataValidationError(
            f"rows[{row}].{names[col]} must be a finite number (NaN and Infinity are not allowed)"
        )


def candles_frame(
    candles: Sequence[Candle], *, timeframe: str, now: datetime, max_rows: int
) -> tuple[pd.DataFrame, bool]:
    """Validated closed candles from ccxt rows, and whether a forming last candle was dropped.

    Raises:
        DataValidationError: broken OHLC rules, order, grid, gaps, or candles not closed yet.
        HTTPException: 422 for too many candles.
    """
    check_row_count(len(candles), max_rows, what="candles")
    frame = validate_ohlcv(frame_from_rows(candles), timeframe=timeframe)
    gaps = find_gaps(pd.DatetimeIndex(frame.index), timeframe)
    if gaps:
        first = gaps[0]
        raise DataValidationError(
            f"candles are not contiguous: {sum(g.missing_bars for g in gaps)} {timeframe} "
            f"candle(s) missing, first from {first.start:%Y-%m-%d %H:%M}Z; send an unbroken run"
        )
    last_closed = pd.Timestamp(last_closed_candle_open(now, timeframe))
    closed = frame[frame.index <= last_closed]
    dropped = len(frame) - len(closed)
    if dropped > 1:
        raise DataValidationError(
            f"{dropped} candles open after {last_closed:%Y-%m-%d %H:%M}Z, the last closed "
            f"{timeframe} candle at server time {now:%Y-%m-%d %H:%M:%S}Z; only the newest "
            "may still be forming (check the timestamps are epoch milliseconds, UTC)"
        )
    if dropped:
        logger.debug("Dropped the forming candle %s", frame.index[-1])
    return closed, bool(dropped)
