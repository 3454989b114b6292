"""The replayed BTC/USDT 1h history of the end-to-end tests: its data, model and row checks.

The emulator replays the shared BTC/USDT 1h file from REPLAY_START (inside the gap-free stretch
2020-12-25 .. 2021-02-11), one candle every SECONDS_PER_CANDLE, serving closed candles plus the
forming one. The bots use the exchange's clock and a logistic model trained on the candles
before the replay.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.settings import QualitySettings, Settings
from data.files import read_candle_file
from data.quality import clean_candles
from ml.decision import positions_from_proba
from ml.predict import predict_history
from ml.registry import ModelArtifact, promote_model
from ml.workflow import train_model
from strategy.vectorized import simulate_signals
from tests.bot.processes import HOUR_MS, REPLAY_COSTS, Database, query
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


REPLAY_POLICY = {
    "entry_threshold": 0.535,
    "exit_threshold": 0.53,
    "allow_short": True,
    "short_entry_threshold": 0.525,
    "short_exit_threshold": 0.528,
    "min_hold_bars": 2,
    "cooldown_bars": 1,
    "sizing": "proba",
    "edge_scale": 12.0,
}
"""A fixed policy that trades the replay model's probabilities (0.51..0.55 over the replay)
long and short, with holds, cooldowns and sizes, so the paper accounts really trade (the
nested rule chooses to stay flat for this weak model)."""


def replay_settings(root: Path) -> Settings:
    """The settings the replay model is trained with (and its backtest uses)."""
    return make_settings(
        root,
        ml={
            "model": {"algorithm": "logreg"},
            "walk_forward": {"train_bars": 2000, "validation_bars": 300, "step_bars": 500},
        },
        decision={"mode": "fixed", "policy": REPLAY_POLICY},
        strategy=REPLAY_COSTS,
    )


def train_replay_registry(root: Path, served: pd.DataFrame) -> Path:
    """A registry under `root` whose current BTC/USDT 1h model was trained before the replay."""
    settings = replay_settings(root)
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


PAPER_SQL = (
    "SELECT candle_open_ms, equity, units, target_side FROM paper_marks "
    "ORDER BY candle_open_ms, exchange"
)
FILLS_SQL = (
    "SELECT fill_open_ms, units, price, fee FROM paper_orders WHERE status = 'filled' "
    "ORDER BY fill_open_ms, role DESC"
)


def paper_vs_backtest(db: Database, served: pd.DataFrame, artifact: ModelArtifact) -> float:
    """Check the paper account against a backtest of the same candles with the same model and
    policy (the model's probabilities, `positions_from_proba` from flat, `simulate_signals`),
    one mark per predicted candle; return the largest equity difference."""
    marks = pd.DataFrame(query(db, PAPER_SQL), columns=["open_ms", "equity", "units", "side"])
    predicted = prediction_rows(db)["candle_open_ms"].tolist()
    assert marks["open_ms"].tolist() == predicted, "a paper mark is missing or extra"
    stamps = pd.to_datetime(marks["open_ms"], unit="ms", utc=True)
    candles = served.loc[stamps.iloc[0] : stamps.iloc[-1]]
    assert len(candles) == len(marks)
    proba = predict_history(
        artifact, served.loc[pd.Timestamp("2020-06-01", tz="UTC") : stamps.iloc[-1]]
    )
    assert artifact.manifest.decision is not None
    policy = artifact.manifest.decision.policy
    targets = positions_from_proba(proba.reindex(candles.index).to_numpy(), policy)
    strategy = make_settings(None, strategy=REPLAY_COSTS).strategy
    backtest = simulate_signals(
        candles,
        targets.side,
        sizes=targets.size,
        cash=strategy.cash,
        fee_rate=strategy.fee_rate,
        slippage_bps=strategy.slippage_bps,
        position_fraction=strategy.position_fraction,
    )
    assert marks["side"].tolist() == targets.side.tolist()
    fills = pd.DataFrame(query(db, FILLS_SQL), columns=["open_ms", "units", "price", "fee"])
    assert len(fills) == backtest.orders
    assert fills["price"].to_numpy() == pytest.approx(backtest.fills["price"].to_numpy(), rel=1e-9)
    assert marks["units"].to_numpy() == pytest.approx(backtest.position.to_numpy(), rel=1e-9)
    difference = float(np.abs(marks["equity"].to_numpy() - backtest.equity.to_numpy()).max())
    assert difference <= 1e-6
    return difference
