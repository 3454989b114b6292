"""The replayed BTC/USDT 1h history of the end-to-end tests: its data, model and row checks.

The emulator replays the shared BTC/USDT 1h file from REPLAY_START (inside the gap-free stretch
2020-12-25 .. 2021-02-11), one candle every SECONDS_PER_CANDLE, serving closed candles plus the
forming one. The bots use the exchange's clock and a logistic model trained on the candles
before the replay.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.settings import QualitySettings
from data.files import read_candle_file
from data.quality import clean_candles
from ml.registry import promote_model
from ml.workflow import train_model
from tests.bot.processes import HOUR_MS, Database, query
from tests.emulator.candles import CandleBook
from tests.factories import make_settings
from tests.prerequisites import SHARED_DATA, require_shared_file

BTC_FILE = SHARED_DATA / "Binance_BTCUSDT_1h.csv"
REPLAY_START = "2021-01-16T00:30:00"
SECONDS_PER_CANDLE = 0.25
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


def load_served() -> pd.DataFrame:
    """The BTC candles exactly as the emulator serves them (cleaned, then 8-decimal strings)."""
    raw = read_candle_file(require_shared_file(BTC_FILE.name))
    clean = clean_candles(
        raw.frame,
        timeframe="1h",
        cfg=QualitySettings(),
        rows_read=raw.rows_read,
        source=str(BTC_FILE),
        format_name=raw.format_name,
    )
    return CandleBook({"BTC/USDT": clean.frame}, timeframe="1h").frame("BTC/USDT")


def train_replay_registry(root: Path, served: pd.DataFrame) -> Path:
    """A registry under `root` whose current BTC/USDT 1h model was trained before the replay."""
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


def prediction_rows(db: Database) -> pd.DataFrame:
    """Every logged prediction, oldest candle first, with the COLUMNS."""
    return pd.DataFrame(query(db, ROWS_SQL), columns=list(COLUMNS))


def assert_one_per_closed_candle(rows: pd.DataFrame) -> None:
    """Each closed candle of the replayed stretch is predicted once, none still forming."""
    opens = rows["candle_open_ms"].tolist()
    assert len(set(opens)) == len(opens), "a candle was predicted twice"
    assert opens == list(range(opens[0], opens[-1] + HOUR_MS, HOUR_MS)), "a candle was missed"
    # no forming candle: each predicted candle had closed when its row was made (exchange clock)
    assert (rows["candle_open_ms"] + HOUR_MS <= rows["created_ms"]).all()


def assert_resolved_but_last(rows: pd.DataFrame, served: pd.DataFrame) -> None:
    """Every prediction but the newest is scored against the real move (horizon = 1)."""
    resolved = rows["resolved_ms"].notna().tolist()
    assert resolved == [True] * (len(rows) - 1) + [False]
    close = served["close"]
    for row in rows.iloc[:-1].itertuples():
        stamp = pd.Timestamp(row.candle_open_ms, unit="ms", tz="UTC")
        actual = close.loc[stamp + pd.Timedelta(hours=1)] / close.loc[stamp] - 1
        assert row.actual_return == pytest.approx(actual, rel=1e-9)
        assert bool(row.is_correct) == (row.direction == ("UP" if actual > 0 else "DOWN"))
