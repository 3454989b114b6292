"""Arrow IPC stream bodies for `/predict/batch` tests: plain, compressed, and hostile ones."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from ml.registry import ModelManifest

BOMB_ROWS = 4_000_000
"""Rows of zeros in the zstd bomb: 34 kB on the wire, about 1 GB for 31 float64 columns."""


def arrow_stream(batches: Sequence[pa.RecordBatch], *, compression: str | None = None) -> bytes:
    """An Arrow IPC stream of `batches` (buffers compressed with `compression`: zstd, lz4)."""
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, batches[0].schema, options=options) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue()


def zeros_batch(manifest: ModelManifest, n_rows: int) -> pa.RecordBatch:
    """`n_rows` rows of 0.0 in every feature column of the model."""
    zeros = pa.array(np.zeros(n_rows))
    return pa.record_batch([zeros] * len(manifest.feature_names), names=manifest.feature_names)


def zstd_bomb(manifest: ModelManifest) -> bytes:
    """One zstd-compressed record batch of `BOMB_ROWS` zero rows with the model's columns."""
    return arrow_stream([zeros_batch(manifest, BOMB_ROWS)], compression="zstd")


def forged_uncompressed_length(manifest: ModelManifest) -> bytes:
    """Each compressed data buffer claims 1 TB once decompressed (its 8-byte length prefix)."""
    body = arrow_stream([zeros_batch(manifest, 1000)], compression="zstd")
    return _replaced(body, 1000 * 8, 2**40, count=len(manifest.feature_names))


def forged_row_count(manifest: ModelManifest) -> bytes:
    """77 rows of buffers, but the batch and every column claim 7,700 rows."""
    body = arrow_stream([zeros_batch(manifest, 77)])
    return _replaced(body, 77, 7700, count=1 + len(manifest.feature_names))


def tiny_batches(manifest: ModelManifest) -> bytes:
    """4,000 one-row record batches: 7 MB on the wire, ~60 MB of Arrow objects once decoded."""
    return arrow_stream([zeros_batch(manifest, 1)] * 4000)


HOSTILE_BODIES: tuple[Callable[[ModelManifest], bytes], ...] = (
    zstd_bomb,
    forged_uncompressed_length,
    forged_row_count,
    tiny_batches,
)
"""Every hostile Arrow body above (each must get a 4xx without being decompressed)."""


def _replaced(body: bytes, old: int, new: int, *, count: int) -> bytes:
    """`body` with every little-endian int64 `old` replaced by `new` (exactly `count` of them)."""
    before, after = struct.pack("<q", old), struct.pack("<q", new)
    if body.count(before) != count:
        raise ValueError(f"expected {count} x {old} in the stream, found {body.count(before)}")
    return body.replace(before, after)
