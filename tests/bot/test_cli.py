"""`cryptopred live --once` in-process: the real Typer app, a real ccxt client, the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from storage.db import make_engine, make_session_factory, session_scope
from storage.repository import latest_bot_run, list_predictions
from tests.emulator import BinanceEmulator, running_emulator

runner = CliRunner()


@pytest.fixture
def emulator(market_candles: pd.DataFrame) -> Iterator[BinanceEmulator]:
    with running_emulator(market_candles.iloc[:1400]) as emu:
        yield emu


def _config(tmp_path: Path, base_url: str, *, registry: Path | None = None) -> Path:
    config = {
        "exchange": {
            "base_url": base_url,
            "timeout_ms": 2000,
            "retry": {"max_attempts": 1, "backoff_seconds": 0.0},
        },
        "ml": {"registry_dir": str(registry or tmp_path / "models")},
        "bot": {"clock": "exchange", "closed_candle_retries": 0},
        "storage": {"db_url": f"sqlite:///{tmp_path / 'bot.db'}"},
        "data": {"cache_dir": str(tmp_path / "cache")},
        "logging": {"level": "WARNING"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _db(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_session_factory(make_engine(f"sqlite:///{tmp_path / 'bot.db'}"))


def test_live_once_predicts_newest_closed_candle_and_exits_0(
    tmp_path: Path, emulator: BinanceEmulator, bot_settings, market_candles: pd.DataFrame
) -> None:
    config = _config(tmp_path, emulator.base_url, registry=bot_settings.ml.registry_dir)
    result = runner.invoke(app, ["--config", str(config), "live", "--once"])
    assert result.exit_code == 0, result.output
    with session_scope(_db(tmp_path), read_only=True) as session:
        (row,) = list_predictions(session).items
        run = latest_bot_run(session)
    # the emulator's clock is half-way through candle 1399: 1398 is the newest closed one
    assert row.candle_open_ms == market_candles.index[1398].value // 1_000_000
    assert run is not None and (run.status, run.ticks, run.predictions_written) == ("stopped", 1, 1)


def test_live_once_without_a_model_exits_2_and_marks_the_run_failed(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    config = _config(tmp_path, emulator.base_url)
    result = runner.invoke(app, ["--config", str(config), "live", "--once"])
    assert result.exit_code == 2
    assert "no current model for BTC/USDT 1h" in result.output
    with session_scope(_db(tmp_path), read_only=True) as session:
        run = latest_bot_run(session)
    assert run is not None and run.status == "failed"
    assert run.last_error is not None and "cryptopred train" in run.last_error


def test_live_once_with_the_exchange_down_exits_1(tmp_path: Path, bot_settings) -> None:
    config = _config(tmp_path, "http://127.0.0.1:9", registry=bot_settings.ml.registry_dir)
    raw = yaml.safe_load(config.read_text())
    raw["bot"]["clock"] = "local"
    config.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["--config", str(config), "live", "--once"])
    assert result.exit_code == 1, result.output
    with session_scope(_db(tmp_path), read_only=True) as session:
        run = latest_bot_run(session)
    assert run is not None
    assert (run.status, run.temporary_errors) == ("stopped", 1)
    assert run.last_error is not None and "127.0.0.1:9" in run.last_error
