"""Batch response encoders: JSON objects in request order, or a columnar Arrow IPC stream."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pydantic_core

from ml.decision import ACTIONS

Vector = npt.NDArray[np.float64]
Sides = npt.NDArray[np.int8]


def batch_json(
    header: dict[str, Any], proba_up: Vector, threshold: float, *, sides: Sides, sizes: Vector
) -> bytes:
    """`{**header, "count": n, "predictions": [{"direction", "proba_up", "action",
    "size"}, ...]}`."""
    directions = np.where(proba_up >= threshold, "UP", "DOWN").tolist()
    actions = [ACTIONS[side] for side in sides.tolist()]
    predictions = [
        {"direction": d, "proba_up": p, "action": a, "size": s}
        for d, p, a, s in zip(directions, proba_up.tolist(), actions, sizes.tolist(), strict=True)
    ]
    return pydantic_core.to_json({**header, "count": len(predictions), "predictions": predictions})


def batch_arrow(
    header: dict[str, Any], proba_up: Vector, threshold: float, *, sides: Sides, sizes: Vector
) -> bytes:
    """An Arrow IPC stream with columns `proba_up`, `direction`, `action` and `size`
    (row order kept).

    The header fields (model id, threshold, symbol, timeframe, count) are schema metadata;
    the policy is JSON under the `policy` key.
    """
    up = proba_up >= threshold
    direction = pa.DictionaryArray.from_arrays(
        pa.array(up.astype(np.int8)), pa.array(["DOWN", "UP"])
    )
    action = pa.DictionaryArray.from_arrays(  # side + 1 indexes SHORT, FLAT, LONG
        pa.array((sides + 1).astype(np.int8)), pa.array([ACTIONS[-1], ACTIONS[0], ACTIONS[1]])
    )
    metadata = {
        key: value if isinstance(value, str) else pydantic_core.to_json(value).decode()
        for key, value in {**header, "count": len(up)}.items()
    }
    table = pa.table(
        {
            "proba_up": pa.array(proba_up, type=pa.float64()),
            "direction": direction,
            "action": action,
            "size": pa.array(sizes, type=pa.float64()),
        },
        metadata=metadata,
    )
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()
