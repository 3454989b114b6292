"""Arrow IPC bodies of `/predict/batch`, read without trusting their compressed sizes.

`pyarrow.ipc.open_stream(...).read_all()` (and even `read_next_batch()`) decompresses a whole
record batch before its size can be checked: a 35 kB zstd stream of 4,000,000 zero rows took
the server from 456 MB to 1,471 MB. Here the stream is read one raw message at a time
(`pyarrow.ipc.MessageReader`); each record batch's row count and decompressed size are read from
its flatbuffer metadata (`Message.fbs`: `Message.header` -> `RecordBatch.length`, `.buffers`,
`.compression`) and from the 8-byte uncompressed-length prefix of each compressed buffer
(Arrow columnar format, "Compression"). Only batches that keep the running totals within the
limits are decoded (each batch also pays a fixed cost per column, so thousands of tiny batches
cannot add up either), the schema is checked before any batch, and every decoded batch is
validated against its buffers. pyarrow verifies the flatbuffer before it hands a message over;
the bounds checks here are a second line of defence.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from fastapi import HTTPException

from api.inputs import Matrix, check_finite, check_row_count
from core.echo import clip_text, echo_items, echo_value
from core.errors import DataValidationError
from serving.models import ServedModel, check_feature_names

RECORD_BATCH_HEADER = 3
"""`MessageHeader` union tag of a `RecordBatch` (Arrow `format/Message.fbs`)."""

COLUMN_CHUNK_BYTES = 512
"""Bookkeeping charged per column of each record batch, so that thousands of tiny batches in
one body count against the decompressed-size limit too (about 450 bytes each, measured)."""

_HOW_TO_WRITE = "write it with pyarrow.ipc.new_stream"


@dataclass(frozen=True, slots=True)
class BatchExtent:
    """What decoding one record batch message costs, known before decoding it."""

    rows: int
    decoded_bytes: int


def rows_from_arrow(body: bytes, model: ServedModel, *, max_rows: int, max_bytes: int) -> Matrix:
    """A (n, n_features) matrix from an Arrow IPC stream with one numeric column per feature.

    Raises:
        DataValidationError: not an Arrow stream, a non-numeric or null-holding column,
            or a non-finite value (column and row named).
        HTTPException: 422 for an empty batch or more than `max_rows` rows, 413 when the
            batches would decompress to more than `max_bytes`; both before decompressing.
        FeatureMismatchError: missing or unknown columns.
    """
    messages = _messages(body)
    schema = _read_schema(next(messages, None))
    _check_columns(schema, model)
    batches, rows, decoded = [], 0, 0
    for message in messages:
        extent = batch_extent(message)
        rows += extent.rows
        decoded += extent.decoded_bytes + len(schema) * COLUMN_CHUNK_BYTES
        _check_totals(rows, decoded, max_rows=max_rows, max_bytes=max_bytes)
        batches.append(_decode(message, schema))
    check_row_count(rows, max_rows)
    table = pa.Table.from_batches(batches, schema=schema)
    matrix = np.column_stack([_column_values(table, name) for name in model.feature_names])
    check_finite(matrix, model.feature_names)
    return matrix


def _check_totals(rows: int, decoded: int, *, max_rows: int, max_bytes: int) -> None:
    """Refuse the stream once the batches so far hold too many rows or decompress too far."""
    if rows > max_rows:
        check_row_count(rows, max_rows)
    if decoded > max_bytes:
        raise HTTPException(
            status_code=413,
            detail=f"Arrow body decompresses to more than {max_bytes} bytes (the batch limit: "
            "api.max_batch_rows rows of float64 features, at least api.max_body_bytes); "
            "send fewer rows per request, in fewer and larger record batches",
        )


def _messages(body: bytes) -> Iterator[pa.ipc.Message]:
    reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(pa.py_buffer(body)))
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return
        except (pa.ArrowException, OSError, ValueError) as e:
            raise _not_arrow(e) from e
        yield message


def _not_arrow(error: Exception) -> DataValidationError:
    return DataValidationError(
        f"body is not an Arrow IPC stream ({clip_text(str(error), max_chars=200)}); {_HOW_TO_WRITE}"
    )


def _read_schema(message: pa.ipc.Message | None) -> pa.Schema:
    if message is None or message.type != "schema":
        raise DataValidationError(f"body is not an Arrow IPC stream (no schema); {_HOW_TO_WRITE}")
    try:
        return pa.ipc.read_schema(message)
    except (pa.ArrowException, ValueError) as e:
        raise _not_arrow(e) from e


def _check_columns(schema: pa.Schema, model: ServedModel) -> None:
    names = schema.names
    if len(set(names)) != len(names):
        raise DataValidationError(f"Arrow columns must be unique, got {echo_items(sorted(names))}")
    check_feature_names(model, names)
    for field in schema:
        if not (pa.types.is_floating(field.type) or pa.types.is_integer(field.type)):
            raise DataValidationError(
                f"column {echo_value(field.name)} has type "
                f"{clip_text(str(field.type), max_chars=60)}; send numbers"
            )


def _decode(message: pa.ipc.Message, schema: pa.Schema) -> pa.RecordBatch:
    """Decode one record batch and check its buffers hold what its lengths claim.

    `read_record_batch` does not validate: a batch whose row count was raised in the metadata
    would otherwise be read past the end of its buffers.
    """
    try:
        batch = pa.ipc.read_record_batch(message, schema)
        batch.validate(full=True)
    except (pa.ArrowException, ValueError) as e:
        raise _not_arrow(e) from e
    return batch


def _column_values(table: pa.Table, name: str) -> Matrix:
    column = table.column(name)
    if column.null_count:
        first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataValidationError(
            f"rows[{first}].{name} is null ({column.null_count} null value(s) in column "
            f"{name!r}); send finite numbers"
        )
    values: Matrix = column.to_numpy().astype(np.float64, copy=False)
    return values


# ------------------------------------------------------------------ flatbuffer metadata
def batch_extent(message: pa.ipc.Message) -> BatchExtent:
    """Rows and decompressed body bytes of a record batch message, read without decoding it.

    Raises:
        DataValidationError: the message is not a record batch or its sizes are inconsistent.
    """
    meta = memoryview(message.metadata)
    body = memoryview(message.body) if message.body is not None else memoryview(b"")
    try:
        root = _unpack("<I", meta, 0)
        if _scalar(meta, root, 1, "<B") != RECORD_BATCH_HEADER:
            raise DataValidationError(
                f"Arrow message of type {message.type!r} where a record batch was expected; "
                f"send numeric columns only ({_HOW_TO_WRITE})"
            )
        batch = _reference(meta, _field(meta, root, 2))
        rows = _scalar(meta, batch, 0, "<q")
        compressed = _field(meta, batch, 3) is not None
        decoded = sum(
            _decoded_length(body, offset, length, compressed=compressed)
            for offset, length in _buffers(meta, batch)
        )
    except struct.error as e:
        raise _not_arrow(e) from e
    if rows < 0:
        raise _not_arrow(ValueError(f"negative row count {rows} in a record batch"))
    return BatchExtent(rows=rows, decoded_bytes=decoded)


def _unpack(fmt: str, data: memoryview, position: int) -> int:
    return _unpack_all(fmt, data, position)[0]


def _unpack_all(fmt: str, data: memoryview, position: int) -> tuple[int, ...]:
    """`struct.unpack_from`, but only inside `data` (it counts a negative offset from the end).

    >>> _unpack_all("<H", memoryview(b"abcd"), 2)
    (25699,)
    >>> _unpack_all("<H", memoryview(b"abcd"), -2)
    Traceback (most recent call last):
    struct.error: offset -2 outside the 4-byte buffer
    """
    if position < 0 or position + struct.calcsize(fmt) > len(data):
        raise struct.error(f"offset {position} outside the {len(data)}-byte buffer")
    values: tuple[int, ...] = struct.unpack_from(fmt, data, position)
    return values


def _field(meta: memoryview, table: int, index: int) -> int | None:
    """Position of field `index` of the flatbuffer table at `table`; None when absent."""
    vtable = table - _unpack("<i", meta, table)
    slot = 4 + 2 * index
    if slot >= _unpack("<H", meta, vtable):
        return None
    offset = _unpack("<H", meta, vtable + slot)
    return table + offset if offset else None


def _scalar(meta: memoryview, table: int, index: int, fmt: str) -> int:
    position = _field(meta, table, index)
    return 0 if position is None else _unpack(fmt, meta, position)


def _reference(meta: memoryview, position: int | None) -> int:
    if position is None:
        raise struct.error("missing table reference")
    return position + _unpack("<I", meta, position)


def _buffers(meta: memoryview, batch: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of every body buffer (`Buffer` structs of 2 x int64)."""
    position = _field(meta, batch, 2)
    if position is None:
        return
    vector = _reference(meta, position)
    for index in range(_unpack("<I", meta, vector)):
        offset, length = _unpack_all("<qq", meta, vector + 4 + 16 * index)
        yield offset, length


def _decoded_length(body: memoryview, offset: int, length: int, *, compressed: bool) -> int:
    """A compressed buffer starts with its uncompressed length (-1: stored uncompressed)."""
    if length < 0 or offset < 0 or offset + length > len(body):
        raise struct.error(f"buffer [{offset}, +{length}) outside the {len(body)}-byte body")
    if not compressed or length == 0:
        return length
    if length < 8:
        raise struct.error(f"compressed buffer of {length} bytes has no length prefix")
    declared = _unpack("<q", body, offset)
    if declared < -1:
        raise struct.error(f"negative uncompressed length {declared}")
    return length - 8 if declared == -1 else declared
