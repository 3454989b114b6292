"""Prediction repository: idempotent inserts, outcomes, keyset pages and accuracy queries."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from storage.db import session_scope
from storage.records import decode_cursor, encode_cursor
from storage.repository import (
    Outcome,
    StoredPrediction,
    insert_predictions,
    last_prediction_open_ms,
    latest_predictions,
    list_predictions,
    resolve_predictions,
    resolved_predictions,
    unresolved_predictions,
)
from tests.storage.factories import HOUR_MS, T0_MS, make_new_prediction

KEY = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h"}


def _insert(factory: sessionmaker[Session], rows: list) -> int:
    with session_scope(factory) as session:
        return insert_predictions(session, rows)


def _all(factory: sessionmaker[Session]) -> list[StoredPrediction]:
    items: list[StoredPrediction] = []
    cursor = None
    with session_scope(factory, read_only=True) as session:
        while True:
            page = list_predictions(session, limit=1000, cursor=cursor)
            items.extend(page.items)
            if page.next_cursor is None:
                return items
            cursor = page.next_cursor


def test_insert_predictions_counts_only_new_rows(factory: sessionmaker[Session]) -> None:
    assert _insert(factory, [make_new_prediction(i) for i in range(3)]) == 3
    two_dupes_one_new = [make_new_prediction(1), make_new_prediction(2), make_new_prediction(3)]
    assert _insert(factory, two_dupes_one_new) == 1
    assert _all(factory)[0].candle_open_ms == T0_MS + 3 * HOUR_MS
    assert len(_all(factory)) == 4


def test_insert_predictions_repeated_ticks_insert_nothing(factory: sessionmaker[Session]) -> None:
    tick = [make_new_prediction(7), make_new_prediction(7, symbol="ETH/USDT")]
    assert _insert(factory, tick) == 2
    for _ in range(3):
        assert _insert(factory, tick) == 0
    assert len(_all(factory)) == 2


def test_insert_predictions_key_includes_model_and_exchange(
    factory: sessionmaker[Session],
) -> None:
    rows = [
        make_new_prediction(0),
        make_new_prediction(0, model_id="other-model"),
        make_new_prediction(0, exchange="kraken"),
        make_new_prediction(0),  # duplicate inside the same batch
    ]
    assert _insert(factory, rows) == 3


def test_insert_predictions_empty_and_large_batches(factory: sessionmaker[Session]) -> None:
    assert _insert(factory, []) == 0
    rows = [make_new_prediction(i) for i in range(1_201)]  # several INSERT chunks
    assert _insert(factory, rows) == 1_201
    assert _insert(factory, rows) == 0


def test_insert_predictions_round_trips_every_field(factory: sessionmaker[Session]) -> None:
    row = make_new_prediction(
        5, proba_up=0.41, is_backfill=True, latency_ms=0.75, signal=-1, horizon_bars=2
    )
    _insert(factory, [row])
    (stored,) = _all(factory)
    for name in row.__dataclass_fields__:
        assert getattr(stored, name) == getattr(row, name), name
    assert stored.direction == "DOWN"
    assert (stored.actual_return, stored.is_correct, stored.resolved_ms) == (None, None, None)
    assert not stored.is_resolved


def test_last_prediction_open_ms_per_model(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        assert last_prediction_open_ms(session, **KEY, model_id="m") is None
    _insert(factory, [make_new_prediction(i, model_id="m") for i in (0, 4, 2)])
    _insert(factory, [make_new_prediction(9, model_id="newer-model")])
    with session_scope(factory) as session:
        assert last_prediction_open_ms(session, **KEY, model_id="m") == T0_MS + 4 * HOUR_MS


def test_unresolved_and_resolve_predictions(factory: sessionmaker[Session]) -> None:
    _insert(factory, [make_new_prediction(i, proba_up=0.7) for i in range(4)])
    until = T0_MS + 3 * HOUR_MS  # targets (open + 2h) of candles 0 and 1 have closed
    with session_scope(factory) as session:
        due = unresolved_predictions(session, **KEY, target_close_until_ms=until)
    assert [p.candle_open_ms for p in due] == [T0_MS, T0_MS + HOUR_MS]
    outcomes = [
        Outcome(prediction_id=due[0].id, actual_return=0.01, resolved_ms=until),
        Outcome(prediction_id=due[1].id, actual_return=-0.02, resolved_ms=until),
        Outcome(prediction_id=999_999, actual_return=0.0, resolved_ms=until),
    ]
    with session_scope(factory) as session:
        assert resolve_predictions(session, outcomes) == 2
        assert unresolved_predictions(session, **KEY, target_close_until_ms=until) == []
    by_open = {p.candle_open_ms: p for p in _all(factory)}
    first, second = by_open[T0_MS], by_open[T0_MS + HOUR_MS]
    assert (first.actual_direction, first.is_correct, first.actual_return) == ("UP", True, 0.01)
    assert (second.actual_direction, second.is_correct) == ("DOWN", False)
    assert first.resolved_ms == until and first.is_resolved
    assert by_open[T0_MS + 2 * HOUR_MS].resolved_ms is None


def test_resolve_predictions_is_idempotent(factory: sessionmaker[Session]) -> None:
    _insert(factory, [make_new_prediction(0)])
    (stored,) = _all(factory)
    with session_scope(factory) as session:
        assert resolve_predictions(session, [Outcome(stored.id, 0.01, 1)]) == 1
        assert resolve_predictions(session, [Outcome(stored.id, -0.5, 2)]) == 0
    (again,) = _all(factory)
    assert (again.actual_return, again.resolved_ms) == (0.01, 1)


def test_resolve_predictions_explicit_direction_wins_over_the_sign(
    factory: sessionmaker[Session],
) -> None:
    _insert(factory, [make_new_prediction(0)])
    (stored,) = _all(factory)
    with session_scope(factory) as session:  # a triple-barrier stop-loss despite a rise
        resolve_predictions(session, [Outcome(stored.id, 0.01, 1, actual_direction="DOWN")])
    (again,) = _all(factory)
    assert again.actual_direction == "DOWN"
    assert again.is_correct is (stored.direction == "DOWN")


def test_list_predictions_pages_are_stable_under_inserts(factory: sessionmaker[Session]) -> None:
    models = ("model-a", "model-b", "model-c")  # three rows per candle: ties on candle_open_ms
    _insert(factory, [make_new_prediction(i, model_id=m) for i in range(10) for m in models])
    original = {p.id for p in _all(factory)}
    seen: list[StoredPrediction] = []
    cursor = None
    newer = 100
    while True:
        with session_scope(factory, read_only=True) as session:
            page = list_predictions(session, limit=4, cursor=cursor)
        seen.extend(page.items)
        # The bot logs newer candles while the client pages backwards through history.
        _insert(factory, [make_new_prediction(newer, model_id="model-a")])
        newer += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    ids = [p.id for p in seen]
    assert len(ids) == len(set(ids)) == 30
    assert set(ids) == original
    keys = [(p.candle_open_ms, p.id) for p in seen]
    assert keys == sorted(keys, reverse=True)


def test_list_predictions_filters(factory: sessionmaker[Session]) -> None:
    _insert(factory, [make_new_prediction(i) for i in range(5)])
    _insert(factory, [make_new_prediction(i, symbol="ETH/USDT") for i in range(5)])
    _insert(factory, [make_new_prediction(i, timeframe="4h") for i in range(5)])
    with session_scope(factory, read_only=True) as session:
        eth = list_predictions(session, symbol="ETH/USDT")
        btc_1h_recent = list_predictions(
            session, symbol="BTC/USDT", timeframe="1h", since_ms=T0_MS + 3 * HOUR_MS
        )
        first = list_predictions(session, limit=2)
    assert {p.symbol for p in eth.items} == {"ETH/USDT"} and len(eth.items) == 5
    assert eth.next_cursor is None
    assert [p.candle_open_ms for p in btc_1h_recent.items] == [
        T0_MS + 4 * HOUR_MS,
        T0_MS + 3 * HOUR_MS,
    ]
    assert len(first.items) == 2 and first.next_cursor is not None


def test_list_predictions_rejects_bad_arguments(factory: sessionmaker[Session]) -> None:
    with session_scope(factory, read_only=True) as session:
        with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
            list_predictions(session, limit=0)
        with pytest.raises(ValueError, match="invalid cursor"):
            list_predictions(session, cursor="not-a-cursor!")


@pytest.mark.parametrize("cursor", ["", "abc", encode_cursor(1, 2)[:-1] + "$", "MTp4", "MQ"])
def test_decode_cursor_rejects_garbage(cursor: str) -> None:
    with pytest.raises(ValueError, match="next_cursor"):
        decode_cursor(cursor)


def test_resolved_predictions_oldest_first_with_recent_limit(
    factory: sessionmaker[Session],
) -> None:
    default_model = make_new_prediction(0).model_id
    _insert(factory, [make_new_prediction(i) for i in range(6)])
    _insert(factory, [make_new_prediction(i, model_id="other") for i in range(6)])
    to_resolve = [
        p for p in _all(factory) if p.model_id == "other" or p.candle_open_ms < T0_MS + 5 * HOUR_MS
    ]
    with session_scope(factory) as session:
        resolve_predictions(session, [Outcome(p.id, 0.01, 1) for p in to_resolve])
        other = resolved_predictions(session, symbol="BTC/USDT", timeframe="1h", model_id="other")
        recent = resolved_predictions(
            session, symbol="BTC/USDT", timeframe="1h", model_id=default_model, limit=2
        )
        everything = resolved_predictions(session, symbol="BTC/USDT", timeframe="1h")
        eth = resolved_predictions(session, symbol="ETH/USDT", timeframe="1h")
    assert [p.candle_open_ms for p in recent] == [T0_MS + 3 * HOUR_MS, T0_MS + 4 * HOUR_MS]
    assert len(everything) == 11  # candle 5 of the default model is still unresolved
    opens = [p.candle_open_ms for p in everything]
    assert opens == sorted(opens)
    assert all(p.is_resolved for p in everything)
    assert len(other) == 6 and {p.model_id for p in other} == {"other"}
    assert eth == []


def test_latest_predictions_one_per_symbol_and_timeframe(factory: sessionmaker[Session]) -> None:
    _insert(factory, [make_new_prediction(i) for i in range(3)])
    _insert(factory, [make_new_prediction(i, symbol="ETH/USDT") for i in range(5)])
    _insert(factory, [make_new_prediction(i, timeframe="4h") for i in range(2)])
    with session_scope(factory) as session:
        latest = latest_predictions(session)
    got = [(p.symbol, p.timeframe, p.candle_open_ms) for p in latest]
    assert got == [
        ("BTC/USDT", "1h", T0_MS + 2 * HOUR_MS),
        ("BTC/USDT", "4h", T0_MS + HOUR_MS),
        ("ETH/USDT", "1h", T0_MS + 4 * HOUR_MS),
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"proba_up": 1.5}, "proba_up must be in"),
        ({"proba_up": float("nan")}, "proba_up must be in"),
        ({"direction": "SIDEWAYS"}, "direction must be"),
        ({"signal": 2}, "signal must be"),
        ({"size": 1.5}, "size must be in"),
        ({"size": float("nan")}, "size must be in"),
        ({"horizon_bars": 0}, "horizon_bars must be"),
        ({"target_close_ms": T0_MS}, "target_close_ms"),
    ],
)
def test_new_prediction_rejects_invalid_values(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_new_prediction(0, **overrides)


def test_outcome_rejects_non_finite_return() -> None:
    with pytest.raises(ValueError, match="actual_return must be finite"):
        Outcome(prediction_id=1, actual_return=float("inf"), resolved_ms=0)
