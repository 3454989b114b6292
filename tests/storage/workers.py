"""Process entry points for the concurrency tests (importable by `spawn` children)."""

from __future__ import annotations

from typing import Any

from core.errors import StorageError
from storage.db import init_db, make_engine, make_session_factory, session_scope
from storage.repository import insert_predictions, last_prediction_open_ms
from tests.storage.factories import make_new_prediction

BATCH_ROWS = 10


def write_predictions(url: str, first: int, count: int, gate: Any, results: Any) -> None:
    """Log candles first..first+count-1 in small read-then-write transactions, as bot ticks do."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    new, errors = 0, []
    gate.wait(30)
    for start in range(first, first + count, BATCH_ROWS):
        rows = [make_new_prediction(i) for i in range(start, start + BATCH_ROWS)]
        try:
            with session_scope(factory, operation="tick") as session:
                last_prediction_open_ms(
                    session,
                    exchange="binance",
                    symbol="BTC/USDT",
                    timeframe="1h",
                    model_id=rows[0].model_id,
                )
                new += insert_predictions(session, rows)
        except StorageError as e:
            errors.append(str(e))
    engine.dispose()
    results.put((new, errors))


def migrate(url: str, gate: Any, results: Any) -> None:
    """Run `init_db` once the gate opens; report the error text, if any."""
    engine = make_engine(url)
    gate.wait(30)
    try:
        init_db(engine)
        results.put(None)
    except StorageError as e:
        results.put(str(e))
    finally:
        engine.dispose()
