"""Body-size limits of `POST /predict/batch`, derived from `api.max_batch_rows` and the model.

One byte limit cannot fit both batch formats: `api.max_batch_rows` = 10,000 rows of 31
full-precision features are about 10.9 MB of JSON but 2.5 MB of Arrow, so with the generic
`api.max_body_bytes` = 8 MB about 7,000 JSON rows already got 413. The batch route therefore
reads its own body (the body-limit middleware leaves that path alone) against the larger of
`api.max_body_bytes` and the size of `api.max_batch_rows` rows of the current model's features
written at full precision; a batch whose rows fit the row limit never hits the byte limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fastapi import HTTPException, Request

from core.settings import ApiSettings

BATCH_PATH = "/predict/batch"
"""The route that enforces its own body limit (exempt from `BodyLimitMiddleware`)."""

MAX_JSON_NUMBER_CHARS = 25
"""The longest JSON text of a finite float64: `-0.0000012345678901234567` (JavaScript's
`JSON.stringify`; Python's `json.dumps` needs at most 24, `-2.2250738585072014e-308`)."""

ARROW_ALLOWANCE_BYTES = 1_000_000
"""Arrow schema and batch metadata, validity bitmaps and padding on top of 8 bytes per value."""


def json_batch_bytes(feature_names: Sequence[str], *, max_rows: int) -> int:
    """Bytes of `{"rows": [...]}` with `max_rows` rows of the longest numbers.

    Counted with `json.dumps`' default separators (`", "` and `": "`); compact JSON is smaller.

    >>> json_batch_bytes(["a"], max_rows=1) == len('{"rows": [{"a": ' + "1" * 25 + "}]}")
    True
    """
    pairs = sum(len(json.dumps(name)) + len(": ") + MAX_JSON_NUMBER_CHARS for name in feature_names)
    row = len("{}") + pairs + len(", ") * max(len(feature_names) - 1, 0)
    return len('{"rows": []}') + max_rows * row + len(", ") * (max_rows - 1)


def arrow_batch_bytes(n_features: int, *, max_rows: int) -> int:
    """Bytes of an Arrow IPC stream of `max_rows` float64 rows, decompressed.

    >>> arrow_batch_bytes(31, max_rows=10_000)
    3480000
    """
    return max_rows * n_features * 8 + ARROW_ALLOWANCE_BYTES


def batch_body_limit(api: ApiSettings, feature_names: Sequence[str], *, arrow: bool) -> int:
    """The byte limit of a batch body (Arrow: also of its decompressed batches)."""
    rows = api.max_batch_rows
    derived = (
        arrow_batch_bytes(len(feature_names), max_rows=rows)
        if arrow
        else json_batch_bytes(feature_names, max_rows=rows)
    )
    return max(api.max_body_bytes, derived)


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it is declared or grows over `max_bytes`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(size, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, max_bytes: int) -> HTTPException:
    return HTTPException(
        status_code=413,
        detail=f"request body too large: {size} bytes > {max_bytes}, the batch limit "
        "(api.max_batch_rows rows of the model's features at full precision, at least "
        "api.max_body_bytes); send fewer rows per request, or an Arrow IPC stream",
    )
