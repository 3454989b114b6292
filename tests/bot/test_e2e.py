"""End to end, as a user runs it: the replaying Binance emulator and `cryptopred live` processes.

The emulator replays the shared BTC/USDT 1h file from REPLAY_START (inside the gap-free stretch
2020-12-25 .. 2021-02-11), one candle every SECONDS_PER_CANDLE, serving closed candles plus the
forming one. The bot uses the exchange's clock, a real SQLite file and a logistic model trained
here on the candles before the replay. The clean and the faulty replay run side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from core.settings import QualitySettings
from data.files import read_candle_file
from data.quality import clean_candles
from ml.predict import predict_history
from ml.registry import ModelArtifact, load_current_model, promote_model
from ml.workflow import train_model
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
from tests.conftest import SHARED_DATA
from tests.emulator.candles import CandleBook
from tests.factories import make_settings

pytestmark = pytest.mark.slow

BTC_FILE = SHARED_DATA / "Binance_BTCUSDT_1h.csv"
REPLAY_START = "2021-01-16T00:30:00"
SECONDS_PER_CANDLE = 0.25
TARGET_PREDICTIONS = 200
COLUMNS = (
    "candle_open_ms",
    "proba_up",
    "direction",
    "is_backfill",
    "created_ms",
    "resolved_ms",
    "actual_return",
    "is_correct",
)
ROWS_SQL = f"SELECT {', '.join(COLUMNS)} FROM predictions ORDER BY candle_open_ms, id"  # noqa: S608


@dataclass(frozen=True)
class Replay:
    """What one bot run against one replaying emulator left behind."""

    rows: pd.DataFrame
    runs: list[tuple]
    exit_code: int
    stop_seconds: float
    last_closed_at_stop_ms: int
    log: str


@pytest.fixture(scope="module")
def served() -> pd.DataFrame:
    """The BTC candles exactly as the emulator serves them (cleaned, then 8-decimal strings)."""
    if not BTC_FILE.is_file():
        pytest.skip(f"shared data not found at {BTC_FILE}")
    raw = read_candle_file(BTC_FILE)
    clean = clean_candles(
        raw.frame,
        timeframe="1h",
        cfg=QualitySettings(),
        rows_read=raw.rows_read,
        source=str(BTC_FILE),
        format_name=raw.format_name,
    )
    return CandleBook({"BTC/USDT": clean.frame}, timeframe="1h").frame("BTC/USDT")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, served: pd.DataFrame) -> Path:
    """A registry whose current BTC/USDT 1h model was trained on candles before the replay."""
    root = tmp_path_factory.mktemp("e2e-registry")
    settings = make_settings(
        root,
        ml={
            "model": {"algorithm": "logreg"},
            "walk_forward": {"train_bars": 2000, "validation_bars": 300, "step_bars": 500},
        },
    )
    candles = served.loc["2020-06-01":"2021-01-15 23:00"]
    outcome = train_model(candles, settings, symbol="BTC/USDT", timeframe="1h", algorithm="logreg")
    promote_model(settings.ml.registry_dir, outcome.model_id)
    return settings.ml.registry_dir


@pytest.fixture(scope="module")
def artifact(registry: Path) -> ModelArtifact:
    return load_current_model(registry, "BTC/USDT", "1h")


def _rows(db: Path) -> pd.DataFrame:
    rows = query(db, ROWS_SQL)
    return pd.DataFrame(rows, columns=list(COLUMNS))


@pytest.fixture(scope="module")
def replays(
    tmp_path_factory: pytest.TempPathFactory, registry: Path
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
            config = write_bot_config(workdir, base_url=emulator.url, registry=registry)
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
                rows=_rows(db),
                runs=query(db, "SELECT status, finished_ms, predictions_written FROM bot_runs"),
                exit_code=code,
                stop_seconds=bot.stop_seconds or 0.0,
                last_closed_at_stop_ms=last_closed,
                log=bot.log.read_text(encoding="utf-8"),
            )
        yield results
    finally:
        for _, emulator, bot in setups.values():
            if bot is not None:
                bot.ensure_stopped()
            emulator.stop()


def _assert_one_per_closed_candle(rows: pd.DataFrame) -> None:
    opens = rows["candle_open_ms"].tolist()
    assert len(set(opens)) == len(opens), "a candle was predicted twice"
    assert opens == list(range(opens[0], opens[-1] + HOUR_MS, HOUR_MS)), "a candle was missed"
    # no forming candle: each predicted candle had closed when its row was made (exchange clock)
    assert (rows["candle_open_ms"] + HOUR_MS <= rows["created_ms"]).all()


def _assert_resolved_but_last(rows: pd.DataFrame, served: pd.DataFrame) -> None:
    resolved = rows["resolved_ms"].notna().tolist()
    assert resolved == [True] * (len(rows) - 1) + [False]  # horizon = 1
    close = served["close"]
    for row in rows.iloc[:-1].itertuples():
        stamp = pd.Timestamp(row.candle_open_ms, unit="ms", tz="UTC")
        actual = close.loc[stamp + pd.Timedelta(hours=1)] / close.loc[stamp] - 1
        assert row.actual_return == pytest.approx(actual, rel=1e-9)
        assert bool(row.is_correct) == (row.direction == ("UP" if actual > 0 else "DOWN"))


def test_e2e_one_prediction_per_closed_candle(
    replays: dict[str, Replay], served: pd.DataFrame
) -> None:
    replay = replays["clean"]
    assert len(replay.rows) >= TARGET_PREDICTIONS
    _assert_one_per_closed_candle(replay.rows)
    # it kept up: at most a few candles (about a second of replay) behind when stopped
    assert replay.rows["candle_open_ms"].iloc[-1] >= replay.last_closed_at_stop_ms - 4 * HOUR_MS
    _assert_resolved_but_last(replay.rows, served)


def test_e2e_faults_lose_and_duplicate_nothing(
    replays: dict[str, Replay], served: pd.DataFrame
) -> None:
    faulty, clean = replays["faults"], replays["clean"]
    assert faulty.log.count("failed (") >= 5, "the emulator injected too few faults to matter"
    assert len(faulty.rows) >= TARGET_PREDICTIONS
    _assert_one_per_closed_candle(faulty.rows)
    _assert_resolved_but_last(faulty.rows, served)
    both = clean.rows.merge(faulty.rows, on="candle_open_ms", suffixes=("_clean", "_faults"))
    assert len(both) >= TARGET_PREDICTIONS - 20
    assert both["proba_up_faults"].to_numpy() == pytest.approx(
        both["proba_up_clean"].to_numpy(), rel=1e-12
    )
    assert (both["direction_faults"] == both["direction_clean"]).all()


def test_e2e_sigterm_exits_0_with_the_last_tick_complete(replays: dict[str, Replay]) -> None:
    for name, replay in replays.items():
        assert replay.exit_code == 0, f"{name}: {replay.log[-2000:]}"
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


def test_e2e_kill_9_then_restart_backfills_missed_candles(
    tmp_path: Path, registry: Path, served: pd.DataFrame
) -> None:
    emulator = Emulator(BTC_FILE, REPLAY_START, tmp_path, SECONDS_PER_CANDLE).start()
    config = write_bot_config(tmp_path, base_url=emulator.url, registry=registry)
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
    rows = _rows(db)
    _assert_one_per_closed_candle(rows)
    _assert_resolved_but_last(rows, served)
    missed = rows[
        (rows["candle_open_ms"] > killed_at) & (rows["candle_open_ms"] <= killed_at + 20 * HOUR_MS)
    ]
    assert len(missed) == 20
    assert missed["is_backfill"].astype(bool).all()
    runs = query(db, "SELECT status FROM bot_runs ORDER BY id")
    assert runs == [("running",), ("stopped",)]  # kill -9 leaves the first run unfinished
