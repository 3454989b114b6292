"""Bot fixtures: a registry with a model trained once, an in-process candle source, bot deps,
a database per backend (SQLite file; PostgreSQL schema when configured) and the replay data."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.deps import BotDeps
from bot.notify import DriftAlarm, Notification, SignalChange
from core.settings import Settings
from core.timeframes import timeframe_to_ms
from data.schema import index_to_epoch_ms
from ml.registry import ModelArtifact, load_model, promote_model
from ml.workflow import train_model
from serving.models import ModelCache
from storage.db import init_db, make_engine, make_session_factory
from tests.bot.replay import load_served, train_replay_registry
from tests.factories import make_ohlcv, make_settings
from tests.pg import BACKENDS, database_url

N_CANDLES = 1700
N_TRAIN = 1100
SMALL_ML = {
    "model": {"algorithm": "logreg"},
    "walk_forward": {"train_bars": 300, "validation_bars": 100, "step_bars": 100, "max_folds": 2},
}


@pytest.fixture(scope="session")
def market_candles() -> pd.DataFrame:
    """The whole synthetic BTC/USDT 1h history the fake exchange serves."""
    return make_ohlcv(N_CANDLES, seed=3)


@pytest.fixture(scope="session")
def trained_registry(
    tmp_path_factory: pytest.TempPathFactory, market_candles: pd.DataFrame
) -> Path:
    """A registry with one logreg model trained on the first N_TRAIN candles (trained once)."""
    root = tmp_path_factory.mktemp("registry-template")
    settings = make_settings(root, ml=SMALL_ML)
    outcome = train_model(
        market_candles.iloc[:N_TRAIN],
        settings,
        symbol="BTC/USDT",
        timeframe="1h",
        algorithm="logreg",
    )
    promote_model(settings.ml.registry_dir, outcome.model_id)
    return settings.ml.registry_dir


@pytest.fixture(scope="session")
def served() -> pd.DataFrame:
    """The shared BTC/USDT 1h candles exactly as the replaying emulator serves them."""
    return load_served()


@pytest.fixture(scope="session")
def replay_registry(tmp_path_factory: pytest.TempPathFactory, served: pd.DataFrame) -> Path:
    """A registry whose current BTC/USDT 1h model was trained on candles before the replay."""
    return train_replay_registry(tmp_path_factory.mktemp("e2e-registry"), served)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file (WAL), or a throw-away PostgreSQL schema."""
    with database_url(request.param, sqlite_path=tmp_path / "bot.db") as url:
        yield url


@pytest.fixture
def bot_settings(tmp_path: Path, trained_registry: Path, db_url: str) -> Settings:
    """Settings on the test's database whose registry is a private copy of the trained one."""
    shutil.copytree(trained_registry, tmp_path / "models")
    return make_settings(tmp_path, ml=SMALL_ML, storage={"db_url": db_url})


@pytest.fixture
def artifact(bot_settings: Settings) -> ModelArtifact:
    root = bot_settings.ml.registry_dir
    (model_dir,) = [path for path in root.iterdir() if path.name != "current"]
    return load_model(root, model_dir.name)


@pytest.fixture
def session_factory(bot_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(bot_settings.storage.db_url)
    init_db(engine)
    yield make_session_factory(engine)
    engine.dispose()


@dataclass
class FakeSource:
    """An in-process `CandleSource` serving closed candles of `frames` at the time `now`.

    `lag_calls` calls return nothing newer than two candles before `now`; `errors` are raised
    by the next calls, in order; `leak_forming` also returns the still-open candle (a broken
    exchange), to check that the bot drops it itself.
    """

    frames: dict[str, pd.DataFrame]
    now: datetime
    exchange_id: str = "binance"
    lag_calls: int = 0
    leak_forming: bool = False
    errors: dict[str, list[Exception]] = field(default_factory=dict)
    calls: list[tuple[str, datetime]] = field(default_factory=list)

    def fetch_candles(
        self,
        symbol: str,
        timeframe: str,
        *,
        since: datetime,
        until: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        self.calls.append((symbol, since))
        pending = self.errors.get(symbol)
        if pending:
            raise pending.pop(0)
        frame = self.frames[symbol]
        step_ms = timeframe_to_ms(timeframe)
        open_ms = index_to_epoch_ms(pd.DatetimeIndex(frame.index))
        now_ms = int(self.now.timestamp() * 1000)
        limit_ms = now_ms if self.leak_forming else now_ms - step_ms
        if self.lag_calls > 0:
            self.lag_calls -= 1
            limit_ms -= 2 * step_ms
        keep = (open_ms >= int(since.timestamp() * 1000)) & (open_ms <= limit_ms)
        if until is not None:
            keep &= open_ms <= int(until.timestamp() * 1000)
        return frame[keep]

    def server_time(self) -> datetime:
        return self.now


def close_of(candles: pd.DataFrame, row: int, *, seconds: float = 5.0) -> datetime:
    """A moment `seconds` after candle number `row` closed (so it is the newest closed one)."""
    step = candles.index[1] - candles.index[0]
    return (candles.index[row] + step + pd.Timedelta(seconds=seconds)).to_pydatetime()


@pytest.fixture
def source(market_candles: pd.DataFrame) -> FakeSource:
    return FakeSource({"BTC/USDT": market_candles}, now=close_of(market_candles, 1300))


@dataclass
class RecordingNotifier:
    """A `Notifier` that keeps what it was told."""

    changes: list[SignalChange] = field(default_factory=list)
    alarms: list[DriftAlarm] = field(default_factory=list)
    closed: bool = False

    def notify(self, change: Notification) -> None:
        if isinstance(change, DriftAlarm):
            self.alarms.append(change)
        else:
            self.changes.append(change)

    def close(self, *, timeout_seconds: float = 10.0) -> None:
        self.closed = True


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_deps(
    bot_settings: Settings,
    source: FakeSource,
    session_factory: sessionmaker[Session],
    sleeps: list[float],
) -> Callable[..., BotDeps]:
    """Build deps: make_deps(bot={...overrides}, run_id=..., notifier=..., settings=...)."""

    def build(**overrides: Any) -> BotDeps:
        settings = overrides.pop("settings", bot_settings)
        bot_overrides = overrides.pop("bot", None)
        if bot_overrides:
            bot = settings.bot.model_copy(update=bot_overrides)
            settings = settings.model_copy(update={"bot": bot})
        models = overrides.pop(
            "models",
            ModelCache(
                settings.ml.registry_dir,
                decision=settings.decision,
                max_age=settings.bot.max_model_age,
            ),
        )
        return BotDeps(
            settings=settings,
            source=overrides.pop("source", source),
            session_factory=session_factory,
            models=models,
            sleep=sleeps.append,
            **overrides,
        )

    return build


HOUR = timedelta(hours=1)
