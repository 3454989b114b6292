"""End to end, as a user runs it: the replaying Binance emulator and `cryptopred live` processes.

The replay (see `tests.bot.replay`) serves the shared BTC/USDT 1h file; each bot uses the
exchange's clock, a real SQLite file and the model trained before the replay. The clean and the
faulty replay run side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ml.predict import predict_history
from ml.registry import ModelArtifact, load_current_model
from tests.bot.processes import (
    HOUR_MS,
    Emulator,
    LiveBot,
    newest_prediction_ms,
    prediction_count,
    query,
    wait_for,
    write_bot_config,
)
from tests.bot.replay import (
    BTC_FILE,
    REPLAY_START,
    SECONDS_PER_CANDLE,
    assert_one_per_closed_candle,
    assert_resolved_but_last,
    paper_vs_backtest,
    prediction_rows,
)

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

TARGET_PREDICTIONS = 200


@dataclass(frozen=True)
class Replay:
    """What one bot run against one replaying emulator left behind."""

    rows: pd.DataFrame
    runs: list[tuple]
    exit_code: int
    stop_seconds: float
    last_closed_at_stop_ms: int
    log: str
    db: Path


@pytest.fixture(scope="module")
def artifact(replay_registry: Path) -> ModelArtifact:
    return load_current_model(replay_registry, "BTC/USDT", "1h")


@pytest.fixture(scope="module")
def db_paths(replays: dict[str, Replay]) -> dict[str, Path]:
    return {name: replay.db for name, replay in replays.items()}


@pytest.fixture(scope="module")
def replays(
    tmp_path_factory: pytest.TempPathFactory, replay_registry: Path
) -> Iterator[dict[str, Replay]]:
    """A clean and a 10 %-faulty replay, run concurrently until each logged 200 predictions."""
    setups = {}
    for name, fault_rate in (("clean", 0.0), ("faults", 0.1)):
        workdir = tmp_path_factory.mktemp(f"e2e-{name}")
        emulator = Emulator(BTC_FILE, REPLAY_START, workdir, SECONDS_PER_CANDLE, fault_rate)
        setups[name] = (workdir, emulator, None)
    try:
        for name, (workdir, emulator, _) in setups.items():
            emulator.start()
            config = write_bot_config(workdir, base_url=emulator.url, registry=replay_registry)
            setups[name] = (workdir, emulator, LiveBot(config, workdir / "bot.log").start())
        results = {}
        for name, (workdir, emulator, bot) in setups.items():
            db = workdir / "bot.db"
            wait_for(
                lambda db=db: prediction_count(db) >= TARGET_PREDICTIONS,
                timeout=150,
                what=f"{TARGET_PREDICTIONS} predictions in the {name} replay",
            )
            last_closed = emulator.last_closed_open_ms()
            code = bot.terminate()
            results[name] = Replay(
                rows=prediction_rows(db),
                runs=query(db, "SELECT status, finished_ms, predictions_written FROM bot_runs"),
                exit_code=code,
                stop_seconds=bot.stop_seconds or 0.0,
                last_closed_at_stop_ms=last_closed,
                log=bot.log.read_text(encoding="utf-8"),
                db=db,
            )
        yield results
    finally:
        for _, emulator, bot in setups.values():
            if bot is not None:
                bot.ensure_stopped()
            emulator.stop()


def test_e2e_one_prediction_per_closed_candle(
    replays: dict[str, Replay], served: pd.DataFrame
) -> None:
    replay = replays["clean"]
    assert len(replay.rows) >= TARGET_PREDICTIONS
    assert_one_per_closed_candle(replay.rows)
    # it kept up: at most a few candles (about a second of replay) behind when stopped
    assert replay.rows["candle_open_ms"].iloc[-1] >= replay.last_closed_at_stop_ms - 4 * HOUR_MS
    assert_resolved_but_last(replay.rows, served)


def test_e2e_faults_lose_and_duplicate_nothing(
    replays: dict[str, Replay], served: pd.DataFrame
) -> None:
    faulty, clean = replays["faults"], replays["clean"]
    assert faulty.log.count("failed (") >= 5, "the emulator injected too few faults to matter"
    assert len(faulty.rows) >= TARGET_PREDICTIONS
    assert_one_per_closed_candle(faulty.rows)
    assert_resolved_but_last(faulty.rows, served)
    both = clean.rows.merge(faulty.rows, on="candle_open_ms", suffixes=("_clean", "_faults"))
    assert len(both) >= TARGET_PREDICTIONS - 20
    assert both["proba_up_faults"].to_numpy() == pytest.approx(
        both["proba_up_clean"].to_numpy(), rel=1e-12
    )
    assert (both["direction_faults"] == both["direction_clean"]).all()


def test_e2e_sigterm_exits_0_with_the_last_tick_complete(replays: dict[str, Replay]) -> None:
    for name, replay in replays.items():
        assert replay.exit_code == 0, f"{name}: {replay.log[-2000:]}"
        logger.info("%s replay: SIGTERM to exit in %.2f s", name, replay.stop_seconds)
        assert replay.stop_seconds < 5.0, name
        ((status, finished_ms, written),) = replay.runs
        assert status == "stopped", name
        assert finished_ms is not None, name
        assert written == len(replay.rows), f"{name}: a tick's heartbeat is missing"
        assert "Received SIGTERM: finishing the running tick" in replay.log


def test_e2e_live_proba_equals_backtest_path(
    replays: dict[str, Replay], served: pd.DataFrame, artifact: ModelArtifact
) -> None:
    for replay in replays.values():
        newest = pd.Timestamp(replay.rows["candle_open_ms"].iloc[-1], unit="ms", tz="UTC")
        backtest = predict_history(
            artifact, served.loc[pd.Timestamp("2020-06-01", tz="UTC") : newest]
        )
        stamps = pd.to_datetime(replay.rows["candle_open_ms"], unit="ms", utc=True)
        expected = backtest.reindex(stamps).to_numpy()
        assert replay.rows["proba_up"].to_numpy() == pytest.approx(expected, rel=1e-9)


def test_e2e_paper_equity_equals_the_backtest(
    replays: dict[str, Replay], served: pd.DataFrame, artifact: ModelArtifact, db_paths: dict
) -> None:
    for name, db in db_paths.items():
        difference = paper_vs_backtest(db, served, artifact)
        logger.info(
            "paper vs backtest, %s replay: max |equity difference| = %.3e", name, difference
        )


def test_e2e_kill_9_then_restart_backfills_missed_candles(
    tmp_path: Path, replay_registry: Path, served: pd.DataFrame
) -> None:
    emulator = Emulator(BTC_FILE, REPLAY_START, tmp_path, SECONDS_PER_CANDLE).start()
    config = write_bot_config(tmp_path, base_url=emulator.url, registry=replay_registry)
    db = tmp_path / "bot.db"
    first = second = None
    try:
        first = LiveBot(config, tmp_path / "bot.log").start()
        wait_for(lambda: prediction_count(db) >= 30, timeout=60, what="30 predictions")
        first.kill()
        killed_at = newest_prediction_ms(db)
        wait_for(
            lambda: emulator.last_closed_open_ms() >= killed_at + 20 * HOUR_MS,
            timeout=30,
            what="20 candles replayed while the bot is down",
        )
        second = LiveBot(config, tmp_path / "bot.log").start()
        target = emulator.last_closed_open_ms() + 3 * HOUR_MS
        wait_for(lambda: newest_prediction_ms(db) >= target, timeout=60, what="the catch-up")
        assert second.terminate() == 0
    finally:
        for bot in (first, second):
            if bot is not None:
                bot.ensure_stopped()
        emulator.stop()
    rows = prediction_rows(db)
    assert_one_per_closed_candle(rows)
    assert_resolved_but_last(rows, served)
    missed = rows[
        (rows["candle_open_ms"] > killed_at) & (rows["candle_open_ms"] <= killed_at + 20 * HOUR_MS)
    ]
    assert len(missed) == 20
    assert missed["is_backfill"].astype(bool).all()
    runs = query(db, "SELECT status FROM bot_runs ORDER BY id")
    assert runs == [("running",), ("stopped",)]  # kill -9 leaves the first run unfinished
    artifact = load_current_model(replay_registry, "BTC/USDT", "1h")
    difference = paper_vs_backtest(db, served, artifact)
    logger.info("paper vs backtest, kill -9 + backfill: max |equity difference| = %.3e", difference)
