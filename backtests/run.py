"""`run_backtest`: candles -> out-of-sample `proba_up` -> backtrader -> trading + classification."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from backtests.decisions import fold_windows
from backtests.metrics import TradingMetrics, buy_and_hold_equity, buy_and_hold_metrics
from backtests.scoring import FoldProgress, ScoredModel, score_registry_model, score_walk_forward
from backtests.trading import (
    BacktestProgress,
    ModelBacktest,
    Progress,
    Segment,
    Selection,
    strategy_inputs,
    trade_model,
    trade_selection,
)
from core.errors import ConfigError, NotEnoughDataError
from core.settings import Settings
from core.types import ModelName
from ml.decision import live_policy
from ml.registry import read_manifest
from ml.workflow import config_hash

__all__ = ["BacktestProgress", "BacktestResult", "ModelBacktest", "Segment", "Selection"]

logger = logging.getLogger(__name__)

BacktestMode = Literal["walk_forward", "fixed_model"]


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """A whole backtest run: the tested candles, buy-and-hold and one entry per model."""

    run_id: str
    created_at: datetime
    config_hash: str
    mode: BacktestMode
    symbol: str
    timeframe: str
    settings: Settings
    data_start: pd.Timestamp
    data_end: pd.Timestamp
    n_candles: int
    candles: pd.DataFrame
    buy_and_hold: TradingMetrics
    buy_and_hold_equity: pd.Series
    models: tuple[ModelBacktest, ...]
    selection: Selection
    seconds: float
    data_source: str = ""  # where the candles came from, in words (set by the caller)
    is_sample: bool = False  # True: the bundled sample, not the user's candles

    @property
    def period_start(self) -> pd.Timestamp:
        """Open time of the first tested candle."""
        return pd.Timestamp(self.candles.index[0])

    @property
    def period_end(self) -> pd.Timestamp:
        """Open time of the last tested candle."""
        return pd.Timestamp(self.candles.index[-1])

    def leaderboard(self) -> list[ModelBacktest]:
        """Models ranked by strategy total return (best first), ties by ROC-AUC."""
        return sorted(
            self.models,
            key=lambda m: (-m.trading.total_return, -np.nan_to_num(m.classification.roc_auc)),
        )


def run_backtest(
    candles: pd.DataFrame,
    settings: Settings,
    *,
    symbol: str,
    timeframe: str,
    algorithms: Sequence[ModelName],
    model_id: str | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Backtest `algorithms` walk-forward (default), or one registry model over the candles.

    `settings.backtest.start/end` restrict the candles used for training AND testing. In
    walk-forward mode every algorithm sees the same candles and folds; the tested period runs
    from the first test candle to the last. With `model_id` the registry model predicts every
    candle whose features are complete (`ml.predict.predict_history`, the live path) and
    `algorithms` is ignored.

    Raises:
        ConfigError: no algorithm, or a model trained on another timeframe.
        NotEnoughDataError: too few candles in the selected range.
    """
    started = time.perf_counter()
    used = select_candles(candles, settings)
    if model_id is not None:
        settings = _saved_model_policy(settings, model_id)
    _check_horizons(settings)
    models = _score(used, settings, timeframe, algorithms, model_id, progress)
    tested = _tested_candles(used, models)
    extras = strategy_inputs(used, settings)
    windows = fold_windows(pd.DatetimeIndex(tested.index), _fold_bounds(models[0], tested))
    backtests = tuple(
        trade_model(m, tested, extras, settings, timeframe, windows, progress) for m in models
    )
    cash = settings.strategy.cash
    bh_equity = buy_and_hold_equity(tested, cash=cash)
    selection = trade_selection(backtests, tested, extras, settings, timeframe, windows, bh_equity)
    created = datetime.now(UTC)
    names = [m.model_id or m.name for m in backtests]
    digest = backtest_config_hash(settings, symbol, timeframe, names)
    return BacktestResult(
        run_id=make_run_id(created, digest),
        created_at=created,
        config_hash=digest,
        mode="walk_forward" if model_id is None else "fixed_model",
        symbol=symbol,
        timeframe=timeframe,
        settings=settings,
        data_start=pd.Timestamp(used.index[0]),
        data_end=pd.Timestamp(used.index[-1]),
        n_candles=len(used),
        candles=tested,
        buy_and_hold=buy_and_hold_metrics(tested, cash=cash, timeframe=timeframe),
        buy_and_hold_equity=bh_equity,
        models=backtests,
        selection=selection,
        seconds=time.perf_counter() - started,
    )


def _score(
    used: pd.DataFrame,
    settings: Settings,
    timeframe: str,
    algorithms: Sequence[ModelName],
    model_id: str | None,
    progress: Progress | None,
) -> tuple[ScoredModel, ...]:
    if model_id is not None:
        return (score_registry_model(used, settings, timeframe=timeframe, model_id=model_id),)
    if not algorithms:
        raise ConfigError("run_backtest needs at least one algorithm (backtest.models)")
    return score_walk_forward(
        used,
        settings,
        algorithms=algorithms,
        horizons=settings.backtest.horizons,
        progress=_fold_progress(progress),
    )


def select_candles(candles: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The candles between `backtest.start` and `backtest.end` (inclusive open times).

    Raises:
        NotEnoughDataError: nothing is left in the range.
    """
    start, end = settings.backtest.start, settings.backtest.end
    out = candles.loc[pd.Timestamp(start) if start else None : pd.Timestamp(end) if end else None]
    if len(out) < 2:
        raise NotEnoughDataError(
            f"{len(out)} candles between {start or 'the start'} and {end or 'the end'} "
            f"(data: {candles.index[0]} .. {candles.index[-1]}); widen --start/--end"
        )
    return out


def backtest_config_hash(
    settings: Settings, symbol: str, timeframe: str, algorithms: Sequence[str]
) -> str:
    """Hash of everything that defines a backtest's result (not paths or the time it ran).

    `algorithms` are the algorithm names, or the registry model ids in fixed-model mode.
    """
    payload = {
        "ml": settings.ml.model_dump(mode="json", exclude={"registry_dir"}),
        "decision": settings.decision.model_dump(mode="json", exclude={"live_policy"}),
        "strategy": settings.strategy.model_dump(mode="json"),
        "backtest": settings.backtest.model_dump(mode="json", exclude={"reports_dir", "models"}),
        "symbol": symbol,
        "timeframe": timeframe,
        "algorithms": list(algorithms),
    }
    return config_hash(payload)


def make_run_id(created: datetime, digest: str) -> str:
    """Sortable run id: UTC time, then a short hash.

    >>> make_run_id(datetime(2024, 5, 1, 12, 30, 5, 120000, tzinfo=UTC), "abcdef0123456789")
    '20240501T123005.120Z-abcdef01'
    """
    stamp = created.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
    return f"{stamp}Z-{digest[:8]}"


def _tested_candles(candles: pd.DataFrame, models: Sequence[ScoredModel]) -> pd.DataFrame:
    """Candles from the first predicted candle to the last one (walk-forward: last test row).

    Every model starts at the same test row; with several label horizons the longer ones lose
    their last unlabeled candles, so the period ends at the earliest last prediction.
    """
    first = models[0].predictions.index[0]
    last = min(m.predictions.index[-1] for m in models)
    for other in models[1:]:  # same candles and splits: every model is tested on one period
        if other.predictions.index[0] != first:
            raise RuntimeError(
                f"{other.algorithm} was tested from another row than {models[0].algorithm}; "
                "walk-forward splits must not depend on the algorithm or the horizon"
            )
    tested = candles.loc[first:last]
    if len(tested) < 2:
        raise NotEnoughDataError(
            f"the tested period {first} .. {last} has {len(tested)} candle(s); "
            "a backtest needs at least 2; provide more candles"
        )
    return tested


def _fold_bounds(
    scored: ScoredModel, tested: pd.DataFrame
) -> list[tuple[int, pd.Timestamp, pd.Timestamp]]:
    """(number, first, last candle) of each test window; one window without folds."""
    if scored.folds:
        return [(f.number, f.test_start, f.test_end) for f in scored.folds]
    return [(1, pd.Timestamp(tested.index[0]), pd.Timestamp(tested.index[-1]))]


def _fold_progress(progress: Progress | None) -> FoldProgress | None:
    if progress is None:
        return None
    return lambda algorithm, done, total: progress(
        BacktestProgress("folds", algorithm, done, total)
    )


def _saved_model_policy(settings: Settings, model_id: str) -> Settings:
    """A saved model has no walk-forward folds to choose on: it trades, as in the bot and the
    API, its validated policy (or `decision.policy` when `decision.live_policy: config` or the
    model has none; the policy line of the report shows which)."""
    manifest = read_manifest(settings.ml.registry_dir, model_id)
    live = live_policy(manifest.decision, settings.decision)
    logger.info("Backtest of %s trades the %s policy: %s", model_id, live.source, live.description)
    decision = settings.decision.model_copy(update={"mode": "fixed", "policy": live.policy})
    return settings.model_copy(update={"decision": decision})


def _check_horizons(settings: Settings) -> None:
    """Several label horizons share one set of test windows only with rolling/expanding folds.

    Raises:
        ConfigError: `--horizons` with `walk_forward.mode: holdout`.
    """
    if len(settings.backtest.horizons) > 1 and settings.ml.walk_forward.mode == "holdout":
        raise ConfigError(
            "--horizons with several horizons needs walk_forward.mode expanding or rolling "
            "(holdout splits by fractions of each horizon's own rows, so their test periods differ)"
        )
