"""A bot started before any model exists waits for one (one log line) instead of crash-looping:
in-process at the runner, and `cryptopred live` as a real process that picks up a promotion."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from bot.deps import BotDeps
from bot.runner import BotRunner, local_clock
from core.errors import ModelIntegrityError
from ml.registry import CURRENT_DIR, promote_model
from storage.db import make_engine, make_session_factory, session_scope
from storage.repository import latest_bot_run, list_predictions
from tests.bot.processes import LiveBot, wait_for, write_bot_config
from tests.conftest import log_has
from tests.emulator import BinanceEmulator, running_emulator

WAITING = "waiting for one"


def _unpromote(root: Path) -> str:
    """Remove the current-model pointers; return the id of the (only) saved model."""
    shutil.rmtree(root / CURRENT_DIR)
    (model_dir,) = [path for path in root.iterdir() if path.is_dir()]
    return model_dir.name


def _calls_until(count: int, then: Callable[[], bool]) -> Callable[[], bool]:
    """A `stopped()` that answers False `count` times, then whatever `then()` says."""
    calls = [0]

    def stopped() -> bool:
        calls[0] += 1
        return then() if calls[0] > count else False

    return stopped


def test_wait_for_models_logs_once_then_starts_when_a_model_is_promoted(
    make_deps: Callable[..., BotDeps], caplog: pytest.LogCaptureFixture
) -> None:
    deps = make_deps()
    root = deps.models.root
    model_id = _unpromote(root)
    runner = BotRunner(deps, clock=local_clock)

    def promote_later() -> bool:
        promote_model(root, model_id)
        return False

    caplog.set_level(logging.INFO)
    assert runner.wait_for_models(
        interval_seconds=0.02, stopped=_calls_until(10, promote_later), poll_seconds=0.005
    )
    waiting = [record for record in caplog.records if WAITING in record.getMessage()]
    assert len(waiting) == 1 and waiting[0].levelno == logging.WARNING
    assert "No current model for BTC/USDT 1h in" in waiting[0].getMessage()
    assert log_has(caplog, "A current model exists now for every market: starting")
    assert runner.fatal is None


def test_wait_for_models_returns_false_when_stopped(
    make_deps: Callable[..., BotDeps], caplog: pytest.LogCaptureFixture
) -> None:
    deps = make_deps()
    _unpromote(deps.models.root)
    runner = BotRunner(deps, clock=local_clock)
    stopped = _calls_until(20, lambda: True)
    assert not runner.wait_for_models(interval_seconds=0.01, stopped=stopped, poll_seconds=0.002)
    assert sum(WAITING in record.getMessage() for record in caplog.records) == 1
    assert runner.fatal is None


def test_wait_for_models_with_a_corrupt_pointer_is_fatal(
    make_deps: Callable[..., BotDeps],
) -> None:
    deps = make_deps()
    (pointer,) = (deps.models.root / CURRENT_DIR).iterdir()
    pointer.write_text("{not json", encoding="utf-8")
    runner = BotRunner(deps, clock=local_clock)
    assert not runner.wait_for_models(interval_seconds=0.01, stopped=lambda: False)
    assert isinstance(runner.fatal, ModelIntegrityError)


@pytest.fixture
def emulator(market_candles: pd.DataFrame) -> Iterator[BinanceEmulator]:
    with running_emulator(market_candles.iloc[:1400]) as emu:
        yield emu


@pytest.mark.slow
def test_live_without_a_model_waits_then_picks_up_a_promoted_model(
    tmp_path: Path, emulator: BinanceEmulator, trained_registry: Path
) -> None:
    registry = tmp_path / "models"
    registry.mkdir()
    config = write_bot_config(
        tmp_path, base_url=emulator.base_url, registry=registry, model_wait_seconds=0.2
    )
    log = tmp_path / "bot.log"
    bot = LiveBot(config, log).start()
    try:
        wait_for(lambda: WAITING in log.read_text(), timeout=30, what="the waiting log line")
        time.sleep(1.5)  # about 7 more checks: still running, still one line
        assert bot.process is not None and bot.process.poll() is None, log.read_text()
        assert log.read_text().count(WAITING) == 1
        (model_dir,) = [p for p in trained_registry.iterdir() if p.name != CURRENT_DIR]
        shutil.copytree(model_dir, registry / model_dir.name)
        promote_model(registry, model_dir.name)
        wait_for(lambda: _predictions(tmp_path) > 0, timeout=30, what="a first prediction")
        assert bot.terminate() == 0, log.read_text()
    finally:
        bot.ensure_stopped()
    text = log.read_text()
    assert "Traceback" not in text and "A current model exists now" in text
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    with session_scope(make_session_factory(engine), read_only=True) as session:
        run = latest_bot_run(session)
    engine.dispose()
    assert run is not None and run.status == "stopped"


def _predictions(workdir: Path) -> int:
    if not (workdir / "bot.db").exists():
        return 0
    engine = make_engine(f"sqlite:///{workdir / 'bot.db'}")
    try:
        with session_scope(make_session_factory(engine), read_only=True) as session:
            return len(list_predictions(session).items)
    except Exception:  # the bot may still be creating the schema
        return 0
    finally:
        engine.dispose()


@pytest.mark.slow
def test_live_waiting_for_a_model_stops_cleanly_on_sigterm(
    tmp_path: Path, emulator: BinanceEmulator
) -> None:
    registry = tmp_path / "models"
    config = write_bot_config(
        tmp_path, base_url=emulator.base_url, registry=registry, model_wait_seconds=60
    )
    log = tmp_path / "bot.log"
    bot = LiveBot(config, log).start()
    try:
        wait_for(lambda: WAITING in log.read_text(), timeout=30, what="the waiting log line")
        assert bot.terminate(timeout=5) == 0, log.read_text()  # not after the 60 s interval
    finally:
        bot.ensure_stopped()
    assert "Received SIGTERM while waiting for a model" in log.read_text()
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    with session_scope(make_session_factory(engine), read_only=True) as session:
        run = latest_bot_run(session)
    engine.dispose()
    assert run is not None and run.status == "stopped"
