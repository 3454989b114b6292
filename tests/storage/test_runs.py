"""Run records: bot heartbeats, backtest runs and model events round-trip through the database."""

from __future__ import annotations

import math

import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.errors import StorageError
from storage.db import session_scope
from storage.repository import (
    NewBacktestRun,
    add_backtest_run,
    add_model_event,
    finish_bot_run,
    get_backtest_run,
    latest_backtest_for_model,
    latest_bot_run,
    list_backtest_runs,
    list_model_events,
    record_tick,
    start_bot_run,
)

LGBM_ID = "BTC_USDT-1h-lightgbm-20240101T0000Z"


def _backtest(run_id: str, created_ms: int, **overrides: object) -> NewBacktestRun:
    values: dict = {
        "run_id": run_id,
        "created_ms": created_ms,
        "config_hash": "abc123",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "models": ("lightgbm", "logreg"),
        "period_start_ms": 1_600_000_000_000,
        "period_end_ms": 1_700_000_000_000,
        "metrics": {
            "lightgbm": {"classification": {"accuracy": 0.52}, "trading": {"sharpe": 0.8}},
            "logreg": {"classification": {"accuracy": 0.51}, "trading": {"sharpe": -0.1}},
        },
        "model_ids": {"lightgbm": LGBM_ID, "logreg": "BTC_USDT-1h-logreg-20240101T0000Z"},
        "report_path": f"{run_id}/report.html",
        "json_path": f"{run_id}/report.json",
    }
    values.update(overrides)
    return NewBacktestRun(**values)


def test_bot_run_heartbeat_round_trip(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        assert latest_bot_run(session) is None
        run_id = start_bot_run(session, started_ms=1_000, host="box", pid=4242)
    with session_scope(factory) as session:
        record_tick(session, run_id, now_ms=2_000, written=3)
        record_tick(
            session,
            run_id,
            now_ms=3_000,
            written=1,
            temporary_errors=2,
            data_errors=1,
            other_errors=1,
            last_error="TemporaryExchangeError: 429",
        )
        record_tick(session, run_id, now_ms=4_000)
    with session_scope(factory) as session:
        run = latest_bot_run(session)
    assert run is not None
    assert (run.id, run.status, run.host, run.pid) == (run_id, "running", "box", 4242)
    assert (run.started_ms, run.last_tick_ms, run.finished_ms) == (1_000, 4_000, None)
    assert (run.ticks, run.predictions_written) == (3, 4)
    assert (run.temporary_errors, run.data_errors, run.other_errors) == (2, 1, 1)
    assert run.last_error == "TemporaryExchangeError: 429"  # a clean tick keeps the last error


def test_finish_bot_run_and_latest_is_newest(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        first = start_bot_run(session, started_ms=1_000, host="box", pid=1)
        finish_bot_run(session, first, now_ms=1_500, status="failed", last_error="ModelError")
        second = start_bot_run(session, started_ms=2_000, host="box", pid=2)
        finish_bot_run(session, second, now_ms=2_500)
    with session_scope(factory) as session:
        run = latest_bot_run(session)
    assert run is not None
    assert (run.id, run.status, run.finished_ms, run.last_error) == (second, "stopped", 2_500, None)


HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("ticked_hours_ago", "status", "expected"),
    [
        (0.5, "running", "running"),
        (1.9, "running", "running"),
        (2.1, "running", "lost"),  # older than two 1h ticks: the process was killed
        (None, "running", "lost"),  # started 3 h ago and never ticked
        (5.0, "stopped", "stopped"),
        (5.0, "failed", "failed"),
    ],
)
def test_latest_bot_run_reports_a_stale_running_run_as_lost(
    factory: sessionmaker[Session], ticked_hours_ago: float | None, status: str, expected: str
) -> None:
    now_ms = 100 * HOUR_MS
    with session_scope(factory) as session:
        run_id = start_bot_run(session, started_ms=now_ms - 3 * HOUR_MS, host="box", pid=7)
        if ticked_hours_ago is not None:
            record_tick(session, run_id, now_ms=now_ms - int(ticked_hours_ago * HOUR_MS))
        if status != "running":
            finish_bot_run(session, run_id, now_ms=now_ms - 4 * HOUR_MS, status=status)
    with session_scope(factory, read_only=True) as session:
        judged = latest_bot_run(session, now_ms=now_ms, lost_after_ms=2 * HOUR_MS)
        raw = latest_bot_run(session)
    assert judged is not None and raw is not None
    assert judged.status == expected
    assert raw.status == status  # without a clock the stored status is returned


def test_record_tick_unknown_run_raises(factory: sessionmaker[Session]) -> None:
    with (
        pytest.raises(StorageError, match="bot run 12345 does not exist"),
        session_scope(factory) as session,
    ):
        record_tick(session, 12345, now_ms=1)


def test_backtest_run_round_trip(factory: sessionmaker[Session]) -> None:
    run = _backtest("20240101-abc", 10)
    with session_scope(factory) as session:
        assert add_backtest_run(session, run) == "20240101-abc"
    with session_scope(factory) as session:
        stored = get_backtest_run(session, "20240101-abc")
        missing = get_backtest_run(session, "nope")
    assert missing is None
    assert stored is not None
    assert stored.id == run.run_id
    assert stored.models == ("lightgbm", "logreg")
    assert stored.metrics == run.metrics
    assert stored.model_ids == dict(run.model_ids)
    assert (stored.report_path, stored.json_path) == (run.report_path, run.json_path)
    assert (stored.period_start_ms, stored.period_end_ms) == (
        run.period_start_ms,
        run.period_end_ms,
    )


def test_backtest_run_non_finite_metrics_become_null(factory: sessionmaker[Session]) -> None:
    metrics = {"lightgbm": {"sharpe": math.nan, "folds": (1.0, math.inf)}}
    with session_scope(factory) as session:
        add_backtest_run(session, _backtest("nan-run", 1, metrics=metrics))
    with session_scope(factory) as session:
        stored = get_backtest_run(session, "nan-run")
    assert stored is not None
    assert stored.metrics == {"lightgbm": {"sharpe": None, "folds": [1.0, None]}}


def test_list_backtest_runs_newest_first(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        for index, created in enumerate((30, 10, 20)):
            add_backtest_run(session, _backtest(f"run-{index}", created))
    with session_scope(factory) as session:
        runs = list_backtest_runs(session, limit=2)
    assert [r.id for r in runs] == ["run-0", "run-2"]


def test_latest_backtest_for_model_matches_exact_id(factory: sessionmaker[Session]) -> None:
    similar = LGBM_ID + "0"  # a LIKE '%id%' match that is not the same model
    with session_scope(factory) as session:
        add_backtest_run(session, _backtest("old", 1))
        add_backtest_run(session, _backtest("new", 2))
        add_backtest_run(session, _backtest("newest-other", 3, model_ids={"lightgbm": similar}))
    with session_scope(factory) as session:
        found = latest_backtest_for_model(session, LGBM_ID)
        other = latest_backtest_for_model(session, similar)
        underscore = latest_backtest_for_model(session, LGBM_ID.replace("_", "X"))
        by_name = latest_backtest_for_model(session, "lightgbm")  # a key, not a model id
    assert found is not None and found.id == "new"
    assert other is not None and other.id == "newest-other"
    assert underscore is None
    assert by_name is None


def test_model_events_round_trip_and_filters(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        add_model_event(
            session,
            created_ms=1,
            symbol="BTC/USDT",
            timeframe="1h",
            model_id="m1",
            event="retrained",
            reason="every 7d",
        )
        promoted = add_model_event(
            session,
            created_ms=2,
            symbol="BTC/USDT",
            timeframe="1h",
            model_id="m1",
            previous_model_id="m0",
            event="promoted",
            reason="roc_auc 0.55 >= 0.54 - 0.01",
            metrics={"roc_auc": 0.55, "brier": math.nan},
        )
        add_model_event(
            session,
            created_ms=3,
            symbol="ETH/USDT",
            timeframe="1h",
            model_id="e1",
            event="rejected",
            reason="roc_auc dropped 0.03",
        )
    with session_scope(factory) as session:
        everything = list_model_events(session)
        btc = list_model_events(session, symbol="BTC/USDT", timeframe="1h")
        m1_latest = list_model_events(session, model_id="m1", limit=1)
    assert [e.event for e in everything] == ["rejected", "promoted", "retrained"]
    assert [e.created_ms for e in btc] == [2, 1]
    (event,) = m1_latest
    assert (event.id, event.previous_model_id, event.event) == (promoted, "m0", "promoted")
    assert event.metrics == {"roc_auc": 0.55, "brier": None}
    assert btc[1].metrics is None and btc[1].previous_model_id is None
