"""Batch response encoders: JSON objects in request order, or a columnar Arrow IPC stream."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pydantic_core

Vector = npt.NDArray[np.float64]


def batch_json(header: dict[str, Any], proba_up: Vector, threshold: float) -> bytes:
    """`{**header, "count": n, "predictions": [{"direction", "probability_up"}, ...]}`."""
    directions = np.where(proba_up >= threshold, "UP", "DOWN").tolist()
    predictions = [
        {"direction": d, "probability_up": p}
        for d, p in zip(directions, proba_up.tolist(), strict=True)
    ]
    return pydantic_core.to_json({**header, "count": len(predictions), "predictions": predictions})


def batch_arrow(header: dict[str, Any], proba_up: Vector, threshold: float) -> bytes:
    """An Arrow IPC stream with columns `probability_up` and `direction` (row order kept).

    The header fields (model id, threshold, symbol, timeframe, count) are schema metadata.
    """
    up = proba_up >= threshold
    direction = pa.DictionaryArray.from_arrays(
        pa.array(up.astype(np.int8)), pa.array(["DOWN", "UP"])
    )
    metadata = {key: str(value) for key, value in {**header, "count": len(up)}.items()}
    table = pa.table(
        {"probability_up": pa.array(proba_up, type=pa.float64()), "direction": direction},
        metadata=metadata,
    )
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
