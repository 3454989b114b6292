"""End to end on one shared database: two `cryptopred live` processes (and `cryptopred serve`).

Both bots have their own config, point at the same replaying emulator (`tests.bot.replay`) and
the same database (one SQLite file in WAL mode, or one throw-away PostgreSQL schema), start at
the same moment on an empty database and race for every candle. The unique key and
`INSERT .. ON CONFLICT DO NOTHING` must leave exactly one prediction per candle and model, with
no error in either process; the Alembic upgrade each runs on start must happen exactly once.
On PostgreSQL the test holds `init_db`'s advisory lock until both processes wait for it, so
they really migrate at the same moment (and the wait proves both take the lock).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from ml.predict import predict_history
from ml.registry import load_current_model
from storage.db import head_revision
from tests.bot.processes import (
    Emulator,
    LiveBot,
    Server,
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
from tests.pg import BACKENDS, HeldMigrationLock, database_url, with_application_name

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

TARGET_PREDICTIONS = 60
DUPLICATES_SQL = (
    "SELECT exchange, symbol, timeframe, candle_open_ms, model_id, count(*) FROM predictions "
    "GROUP BY exchange, symbol, timeframe, candle_open_ms, model_id HAVING count(*) > 1"
)
RUNS_SQL = (
    "SELECT status, predictions_written, ticks, data_errors, other_errors, last_error "
    "FROM bot_runs ORDER BY id"
)
SCHEMA_LINE = "is at schema revision"
UPGRADE_LINE = "Running upgrade  -> "
BOTS = ("bot-a", "bot-b")


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def process_url(url: str, name: str) -> str:
    """The shared URL as process `name` uses it (its PostgreSQL sessions carry the name)."""
    return with_application_name(url, name) if is_postgres(url) else url


def start_at_once(url: str, processes: Sequence[LiveBot | Server]) -> None:
    """Start the processes; on PostgreSQL release them together from the migration lock."""
    if not is_postgres(url):
        for process in processes:
            process.start()
        return
    lock = HeldMigrationLock(url)
    try:
        for process in processes:
            process.start()
        names = sorted(process.config.stem for process in processes)
        wait_for(
            lambda: set(names) <= set(lock.waiting()),
            timeout=45,
            what=f"{names} to wait for the migration lock (does init_db take it?)",
        )
    finally:
        lock.release()


def predicted_candles(log: str) -> set[str]:
    """Candles a bot predicted (whether or not its insert won), from its INFO lines."""
    return set(re.findall(r"candle_close_ts=(\S+)", log))


@dataclass(frozen=True)
class SharedRun:
    """What two bots racing on one database left behind."""

    rows: pd.DataFrame
    duplicates: list[tuple]
    runs: list[tuple]
    revisions: list[tuple]
    exit_codes: list[int]
    logs: list[str]


@pytest.fixture(scope="module", params=BACKENDS)
def shared_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One empty database for the whole module, per backend."""
    path = tmp_path_factory.mktemp("shared-db") / "bot.db"
    with database_url(request.param, sqlite_path=path) as url:
        yield url


@pytest.fixture(scope="module")
def two_bots(
    tmp_path_factory: pytest.TempPathFactory, shared_url: str, replay_registry: Path
) -> SharedRun:
    """Two `cryptopred live` started at once on `shared_url`, stopped after 60 candles."""
    workdir = tmp_path_factory.mktemp("two-bots")
    emulator = Emulator(BTC_FILE, REPLAY_START, workdir, SECONDS_PER_CANDLE).start()
    bots = [
        LiveBot(
            write_bot_config(
                workdir,
                base_url=emulator.url,
                registry=replay_registry,
                db_url=process_url(shared_url, name),
                name=name,
            ),
            workdir / f"{name}.log",
        )
        for name in BOTS
    ]
    try:
        start_at_once(shared_url, bots)
        wait_for(
            lambda: prediction_count(shared_url) >= TARGET_PREDICTIONS,
            timeout=45,
            what=f"{TARGET_PREDICTIONS} predictions from two bots",
        )
        codes = [bot.terminate() for bot in bots]
    finally:
        for bot in bots:
            bot.ensure_stopped()
        emulator.stop()
    return SharedRun(
        rows=prediction_rows(shared_url),
        duplicates=query(shared_url, DUPLICATES_SQL),
        runs=query(shared_url, RUNS_SQL),
        revisions=query(shared_url, "SELECT version_num FROM alembic_version"),
        exit_codes=codes,
        logs=[bot.log.read_text(encoding="utf-8") for bot in bots],
    )


def test_two_bots_log_each_candle_exactly_once(two_bots: SharedRun, served: pd.DataFrame) -> None:
    assert two_bots.duplicates == []
    assert len(two_bots.rows) >= TARGET_PREDICTIONS
    assert_one_per_closed_candle(two_bots.rows)
    assert_resolved_but_last(two_bots.rows, served)


def test_two_bots_stay_healthy_and_count_each_row_once(two_bots: SharedRun) -> None:
    assert two_bots.exit_codes == [0, 0], two_bots.logs
    for log in two_bots.logs:
        assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    statuses = [run[0] for run in two_bots.runs]
    written = [run[1] for run in two_bots.runs]
    assert statuses == ["stopped", "stopped"]
    assert all(run[2] > 0 for run in two_bots.runs)  # both ticked
    assert [(run[3], run[4]) for run in two_bots.runs] == [(0, 0), (0, 0)]
    # a race lost on the unique key inserts nothing and is not counted as written
    assert sum(written) == len(two_bots.rows)


def test_two_bots_really_race_for_the_same_candles(two_bots: SharedRun) -> None:
    first, second = (predicted_candles(log) for log in two_bots.logs)
    # both poll every 0.1 s and a candle closes every 0.25 s, so most candles are predicted
    # by both and one insert per candle loses on the unique key; 10 shows the race is routine
    assert len(first & second) >= 10, (len(first), len(second))


def test_two_bots_migrate_the_empty_database_once(two_bots: SharedRun) -> None:
    assert two_bots.revisions == [(head_revision(),)]
    for log in two_bots.logs:
        assert f"{SCHEMA_LINE} {head_revision()}" in log
    # one ran the migration, the other found the schema at head
    assert sorted(log.count(UPGRADE_LINE) for log in two_bots.logs) == [0, 1]


def test_two_bots_store_the_backtest_proba(
    two_bots: SharedRun, served: pd.DataFrame, replay_registry: Path
) -> None:
    artifact = load_current_model(replay_registry, "BTC/USDT", "1h")
    newest = pd.Timestamp(two_bots.rows["candle_open_ms"].iloc[-1], unit="ms", tz="UTC")
    backtest = predict_history(artifact, served.loc[pd.Timestamp("2020-06-01", tz="UTC") : newest])
    stamps = pd.to_datetime(two_bots.rows["candle_open_ms"], unit="ms", utc=True)
    # 1e-9 also checks the column keeps a double (a 4-byte REAL would be off by ~1e-7)
    assert two_bots.rows["proba_up"].to_numpy() == pytest.approx(
        backtest.reindex(stamps).to_numpy(), rel=1e-9
    )


def test_two_bots_paper_equity_equals_the_backtest(
    two_bots: SharedRun, shared_url: str, served: pd.DataFrame, replay_registry: Path
) -> None:
    artifact = load_current_model(replay_registry, "BTC/USDT", "1h")
    difference = paper_vs_backtest(shared_url, served, artifact)
    logger.info(
        "paper vs backtest, two bots on %s: max |difference| = %.3e", shared_url[:10], difference
    )


@pytest.fixture
def live_and_serve(
    tmp_path: Path, db_url: str, replay_registry: Path
) -> Iterator[tuple[LiveBot, Server]]:
    """`cryptopred live` and `cryptopred serve` started at once on the empty `db_url`."""
    emulator = Emulator(BTC_FILE, REPLAY_START, tmp_path, SECONDS_PER_CANDLE).start()
    configs = {
        name: write_bot_config(
            tmp_path,
            base_url=emulator.url,
            registry=replay_registry,
            db_url=process_url(db_url, name),
            name=name,
        )
        for name in ("live", "serve")
    }
    bot = LiveBot(configs["live"], tmp_path / "live.log")
    server = Server(configs["serve"], tmp_path / "serve.log")
    try:
        start_at_once(db_url, [bot, server])
        yield bot, server
    finally:
        bot.ensure_stopped()
        server.ensure_stopped()
        emulator.stop()


def test_live_and_serve_upgrade_an_empty_database_at_once(
    live_and_serve: tuple[LiveBot, Server], db_url: str
) -> None:
    bot, server = live_and_serve
    health: dict = {}

    def bot_seen_by_the_api() -> bool:
        nonlocal health
        health = server.get_json("/health?symbol=BTC/USDT&timeframe=1h")[1] or {}
        return health.get("bot") == "running" and health.get("last_tick_at") is not None

    wait_for(bot_seen_by_the_api, timeout=45, what="the API to report the bot's heartbeat")
    status, page = server.get_json("/predictions?symbol=BTC/USDT&timeframe=1h&limit=5")
    assert status == 200
    assert page["items"], "the API does not see the bot's predictions"
    assert health["database"] == "ok"
    assert bot.terminate() == 0
    assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
    assert query(db_url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    logs = [log.read_text(encoding="utf-8") for log in (bot.log, server.log)]
    for text in logs:
        assert f"{SCHEMA_LINE} {head_revision()}" in text, text[-3000:]
        assert "Traceback" not in text and " ERROR " not in text, text[-3000:]
    assert sorted(text.count(UPGRADE_LINE) for text in logs) == [0, 1]
