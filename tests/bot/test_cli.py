"""`cryptopred live --once` in-process: the real Typer app, a real ccxt client, the emulator,
on a SQLite file and on PostgreSQL (the command migrates the empty database on start)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine
from typer.testing import CliRunner

from cli.main import app
from core.settings import Settings
from storage.db import (
    current_revision,
    head_revision,
    make_engine,
    make_session_factory,
    session_scope,
)
from storage.repository import latest_bot_run, list_predictions
from tests.emulator import BinanceEmulator, running_emulator

runner = CliRunner()


@pytest.fixture
def emulator(market_candles: pd.DataFrame) -> Iterator[BinanceEmulator]:
    with running_emulator(market_candles.iloc[:1400]) as emu:
        yield emu


def _config(tmp_path: Path, base_url: str, *, db_url: str, registry: Path | None = None) -> Path:
    config = {
        "exchange": {
            "base_url": base_url,
            "timeout_ms": 2000,
            "retry": {"max_attempts": 1, "backoff_seconds": 0.0},
        },
        "ml": {"registry_dir": str(registry or tmp_path / "models")},
        "bot": {"clock": "exchange", "closed_candle_retries": 0},
        "storage": {"db_url": db_url},
        "data": {"cache_dir": str(tmp_path / "cache")},
        "logging": {"level": "WARNING"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on the database the command writes (a SQLite file or a PostgreSQL schema)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_live_once_predicts_newest_closed_candle_and_exits_0(
    tmp_path: Path,
    emulator: BinanceEmulator,
    bot_settings: Settings,
    market_candles: pd.DataFrame,
    db_url: str,
    db_engine: Engine,
) -> None:
    config = _config(
        tmp_path, emulator.base_url, db_url=db_url, registry=bot_settings.ml.registry_dir
    )
    result = runner.invoke(app, ["--config", str(config), "live", "--once"])
    assert result.exit_code == 0, result.output
    assert current_revision(db_engine) == head_revision()  # the command migrated on start
    with session_scope(make_session_factory(db_engine), read_only=True) as session:
        (row,) = list_predictions(session).items
        run = latest_bot_run(session)
    # the emulator's clock is half-way through candle 1399: 1398 is the newest closed one
    assert row.candle_open_ms == market_candles.index[1398].value // 1_000_000
    assert run is not None and (run.status, run.ticks, run.predictions_written) == ("stopped", 1, 1)


def test_live_once_without_a_model_exits_2_and_marks_the_run_failed(
    tmp_path: Path, emulator: BinanceEmulator, db_url: str, db_engine: Engine
) -> None:
    config = _config(tmp_path, emulator.base_url, db_url=db_url)
    result = runner.invoke(app, ["--config", str(config), "live", "--once"])
    assert result.exit_code == 2
    assert "no current model for BTC/USDT 1h" in result.output
    with session_scope(make_session_factory(db_engine), read_only=True) as session:
        run = latest_bot_run(session)
    assert run is not None and run.status == "failed"
    assert run.last_error is not None and "cryptopred train" in run.last_error


def test_live_once_with_the_exchange_down_exits_1(
    tmp_path: Path, bot_settings: Settings, db_url: str, db_engine: Engine
) -> None:
    config = _config(
        tmp_path, "http://127.0.0.1:9", db_url=db_url, registry=bot_settings.ml.registry_dir
    )
    raw = yaml.safe_load(config.read_text())
    raw["bot"]["clock"] = "local"
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["--config", str(config), "live", "--once"])
    assert result.exit_code == 1, result.output
    with session_scope(make_session_factory(db_engine), read_only=True) as session:
        run = latest_bot_run(session)
    assert run is not None
    assert (run.status, run.temporary_errors) == ("stopped", 1)
    assert run.last_error is not None and "127.0.0.1:9" in run.last_error


@pytest.mark.parametrize(("level", "traceback_shown"), [("WARNING", False), ("DEBUG", True)])
def test_live_once_with_a_tampered_model_prints_no_traceback_below_debug(
    tmp_path: Path,
    emulator: BinanceEmulator,
    bot_settings: Settings,
    db_url: str,
    level: str,
    traceback_shown: bool,
) -> None:
    registry = bot_settings.ml.registry_dir
    (model_file,) = registry.glob("*/model.joblib")
    with model_file.open("ab") as handle:
        handle.write(b"tampered")
    config = _config(tmp_path, emulator.base_url, db_url=db_url, registry=registry)
    raw = yaml.safe_load(config.read_text())
    raw["logging"]["level"] = level
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["--config", str(config), "live", "--once"])
    assert result.exit_code == 2
    (line,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "does not match its manifest" in line
    assert ("Traceback (most recent call last)" in result.output) is traceback_shown
    errors = [line for line in result.output.splitlines() if " ERROR " in line]
    assert "Stopping the bot: BTC/USDT 1h cannot be predicted (ModelIntegrityError)" in errors[0]
    assert "The bot stops:" in errors[1] and len(errors) == 2
