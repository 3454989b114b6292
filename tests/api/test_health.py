"""`GET /health` under a held SQLite write lock and with lost (killed) bot runs."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.queries import LOST_MIN_MS, bot_state, lost_after
from storage.records import BotRun
from tests.api.conftest import api_settings, install_model, seed_database
from tests.factories import make_settings


@contextmanager
def held_write_lock(db_file: Path) -> Iterator[None]:
    """Hold the SQLite write lock from another connection, as a busy bot or migration would."""
    other = sqlite3.connect(db_file, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_health_answers_fast_while_another_connection_holds_the_write_lock(
    tmp_path, trained_registry
) -> None:
    settings = api_settings(tmp_path)  # busy_timeout_ms stays at its 5,000 ms default
    manifest = install_model(trained_registry, settings)
    seed_database(settings, manifest.model_id)
    with TestClient(create_app(settings)) as app_client, held_write_lock(tmp_path / "test.db"):
        started = time.perf_counter()
        response = app_client.get("/health")
        elapsed = time.perf_counter() - started
    assert response.json()["database"] == "ok", response.text
    assert response.status_code == 200, response.text
    assert elapsed < 1.0, f"/health took {elapsed:.2f} s under a held write lock"


def test_health_reports_a_killed_bot_as_stale(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path)  # bot.timeframes ["1h"]: lost after two hours
    manifest = install_model(trained_registry, settings)
    ticked_ms = int(time.time() * 1000) - int(2.5 * 3_600_000)  # within api.max_tick_age (3h)
    seed_database(settings, manifest.model_id, now_ms=ticked_ms)
    with TestClient(create_app(settings)) as app_client:
        response = app_client.get("/health")
    body = response.json()
    assert response.status_code == 200, body  # the API still serves
    assert body["bot"] == "stale"
    assert "is lost" in body["bot_detail"] and "two ticks" in body["bot_detail"], body


def test_health_keeps_a_bot_running_within_two_ticks(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path)
    manifest = install_model(trained_registry, settings)
    seed_database(settings, manifest.model_id, now_ms=int(time.time() * 1000) - 5_400_000)
    with TestClient(create_app(settings)) as app_client:
        body = app_client.get("/health").json()
    assert body["bot"] == "running" and body["status"] == "ok", body


@pytest.mark.parametrize(
    ("bot", "expected_ms"),
    [
        ({}, 2 * 3_600_000),  # two 1h ticks
        ({"timeframes": ["4h", "15m"]}, 2 * 900_000),  # the shortest timeframe ticks most
        ({"poll_seconds": 0.1}, LOST_MIN_MS),  # a replay bot: one slow tick is not "lost"
    ],
)
def test_lost_after_is_two_ticks_of_the_bot(bot: dict, expected_ms: int) -> None:
    assert lost_after(make_settings(None, bot=bot)) == expected_ms


@pytest.mark.parametrize(
    ("status", "tick_age", "expected"),
    [
        ("running", 60.0, "running"),
        ("running", None, "stale"),  # started, never ticked
        ("running", 4 * 3600.0, "stale"),  # older than api.max_tick_age (3h)
        ("lost", 3 * 3600.0, "stale"),  # killed: no heartbeat for two ticks
        ("stopped", 60.0, "stopped"),
        ("failed", 60.0, "stopped"),
    ],
)
def test_bot_state_maps_runs_to_the_health_vocabulary(
    status: str, tick_age: float | None, expected: str
) -> None:
    run = BotRun(
        id=1, started_ms=0, last_tick_ms=None, finished_ms=None, status=status, ticks=0,
        predictions_written=0, temporary_errors=0, data_errors=0, other_errors=0,
        last_error=None, host="h", pid=1,
    )  # fmt: skip
    settings = make_settings(None)
    state, detail = bot_state(run, tick_age, settings, lost_after(settings))
    assert state == expected
    assert (detail is None) is (expected == "running")
    assert bot_state(None, None, settings, lost_after(settings))[0] == "absent"
