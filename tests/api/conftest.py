"""API fixtures: a trained registry model, a seeded SQLite file and a TestClient."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings
from core.timeframes import timeframe_to_ms
from ml.registry import ModelManifest, promote_model, read_manifest
from ml.workflow import train_model
from storage.db import init_db, make_engine, make_session_factory, session_scope
from storage.repository import (
    NewBacktestRun,
    NewPrediction,
    Outcome,
    add_backtest_run,
    insert_predictions,
    list_predictions,
    record_tick,
    resolve_predictions,
    start_bot_run,
)
from tests.factories import make_ohlcv, make_settings

SYMBOL, TIMEFRAME = "BTC/USDT", "1h"
SMALL_ML = {
    "model": {"algorithm": "logreg"},
    "walk_forward": {"train_bars": 800, "validation_bars": 200, "step_bars": 400},
}
RUN_ID = "20240501T000000.000Z-1a2b3c4d"


def api_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings with paths under tmp_path, a file SQLite DB, small ML and no rate limit."""
    sections: dict[str, Any] = {"ml": dict(SMALL_ML), "api": {"rate_limit": None}}
    for name, values in overrides.items():
        sections[name] = {**sections.get(name, {}), **values}
    return make_settings(tmp_path, **sections)


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry holding one small logistic-regression model (trained once per session)."""
    root = tmp_path_factory.mktemp("registry-base")
    settings = api_settings(root)
    train_model(
        make_ohlcv(2000, seed=11), settings, symbol=SYMBOL, timeframe=TIMEFRAME, algorithm="logreg"
    )
    return settings.ml.registry_dir


def install_model(registry: Path, settings: Settings, *, promote: bool = True) -> ModelManifest:
    """Copy the trained registry into `settings.ml.registry_dir`, optionally promoting it."""
    shutil.copytree(registry, settings.ml.registry_dir, dirs_exist_ok=True)
    model_dir = next(p for p in settings.ml.registry_dir.iterdir() if p.name != "current")
    if promote:
        return promote_model(settings.ml.registry_dir, model_dir.name)
    return read_manifest(settings.ml.registry_dir, model_dir.name)


def seed_database(
    settings: Settings, model_id: str, *, n: int = 150, now_ms: int | None = None
) -> None:
    """Bot-like rows: `n` hourly predictions (all but the last two resolved), a heartbeat, a run."""
    engine = make_engine(settings.storage.db_url)
    init_db(engine)
    factory = make_session_factory(engine)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    step = timeframe_to_ms(TIMEFRAME)
    first_open = (now_ms // step - n - 1) * step
    rng = np.random.default_rng(5)
    with session_scope(factory) as session:
        insert_predictions(
            session, [_prediction(first_open + i * step, model_id, rng, now_ms) for i in range(n)]
        )
    with session_scope(factory) as session:
        items = list_predictions(session, symbol=SYMBOL, timeframe=TIMEFRAME, limit=1000).items
        outcomes = [
            Outcome(p.id, float(rng.normal(0.0, 0.01)), p.target_close_ms)
            for p in items
            if p.target_close_ms <= now_ms - 2 * step
        ]
        resolve_predictions(session, outcomes)
        run_id = start_bot_run(session, started_ms=now_ms - 3_600_000, host="test", pid=1)
        record_tick(session, run_id, now_ms=now_ms, written=1)
        add_backtest_run(session, _backtest_run(model_id, first_open, now_ms))
    engine.dispose()


def _prediction(
    open_ms: int, model_id: str, rng: np.random.Generator, now_ms: int
) -> NewPrediction:
    step = timeframe_to_ms(TIMEFRAME)
    proba = float(rng.uniform(0.3, 0.7))
    return NewPrediction(
        exchange="binance",
        symbol=SYMBOL,
        timeframe=TIMEFRAME,
        candle_open_ms=open_ms,
        target_close_ms=open_ms + 2 * step,
        horizon_bars=1,
        proba_up=proba,
        direction="UP" if proba >= 0.5 else "DOWN",
        signal=1 if proba >= 0.55 else 0,
        threshold=0.5,
        model_id=model_id,
        created_ms=min(open_ms + step + 5000, now_ms),
        latency_ms=12.0,
    )


def _backtest_run(model_id: str, start_ms: int, end_ms: int) -> NewBacktestRun:
    return NewBacktestRun(
        run_id=RUN_ID,
        created_ms=end_ms,
        config_hash="1a2b3c4d5e6f7a8b",
        symbol=SYMBOL,
        timeframe=TIMEFRAME,
        models=("logreg",),
        period_start_ms=start_ms,
        period_end_ms=end_ms,
        metrics={
            "logreg": {
                "total_return": 0.042,
                "buy_and_hold_return": 0.031,
                "sharpe": 0.71,
                "max_drawdown": -0.083,
                "n_trades": 37,
                "accuracy": 0.512,
                "roc_auc": 0.519,
                "n_predictions": 800,
                "p_value": 0.31,
                "best_baseline": "persistence",
                "best_baseline_accuracy": 0.503,
                "break_even_bps": None,
                "in_sample": False,
            }
        },
        model_ids={"logreg": model_id},
        report_path=f"{RUN_ID}/report.html",
        json_path=f"{RUN_ID}/report.json",
    )


def write_report(settings: Settings) -> Path:
    """A small report.html (+ an asset next to the runs) like `cryptopred backtest` writes."""
    run_dir = settings.backtest.reports_dir / RUN_ID
    run_dir.mkdir(parents=True, exist_ok=True)
    (settings.backtest.reports_dir / "assets").mkdir(exist_ok=True)
    (settings.backtest.reports_dir / "assets" / "report.css").write_text("body{}", encoding="utf-8")
    html = (
        '<html><head><link rel="stylesheet" href="../assets/report.css"></head>'
        '<body>report<script>document.body.dataset.scripts = "ran";</script></body></html>'
    )
    (run_dir / "report.html").write_text(html, encoding="utf-8")
    (run_dir / "secret.txt").write_text("not served", encoding="utf-8")
    return run_dir / "report.html"


@pytest.fixture
def served(tmp_path: Path, trained_registry: Path) -> tuple[Settings, ModelManifest]:
    """Settings with a promoted model, a seeded database and a report on disk."""
    settings = api_settings(tmp_path)
    manifest = install_model(trained_registry, settings)
    seed_database(settings, manifest.model_id)
    write_report(settings)
    return settings, manifest


@pytest.fixture
def client(served: tuple[Settings, ModelManifest]) -> Iterator[TestClient]:
    with TestClient(create_app(served[0])) as test_client:
        yield test_client


@pytest.fixture
def manifest(served: tuple[Settings, ModelManifest]) -> ModelManifest:
    return served[1]


def features_of(manifest: ModelManifest, **changes: Any) -> dict[str, Any]:
    """A valid feature mapping (training-range midpoints) with `changes` applied."""
    values: dict[str, Any] = {
        name: (low + high) / 2 for name, (low, high) in manifest.feature_ranges.items()
    }
    values.update(changes)
    return values
