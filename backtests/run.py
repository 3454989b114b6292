"""`run_backtest`: candles -> out-of-sample `proba_up` -> backtrader -> trading + classification."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from backtests.metrics import (
    TradingMetrics,
    buy_and_hold_equity,
    buy_and_hold_metrics,
    segment_metrics,
    trading_metrics,
)
from backtests.scoring import FoldProgress, ScoredModel, score_registry_model, score_walk_forward
from backtests.sensitivity import FeeSensitivity, engine_gap, fee_sensitivity
from core.errors import ConfigError, NotEnoughDataError
from core.settings import Settings, SignalSettings
from core.types import ModelName
from ml.evaluation import (
    Baselines,
    ClassificationMetrics,
    Significance,
    classification_metrics,
    roc_auc,
)
from ml.features import average_true_range
from ml.signals import signals_from_proba
from ml.workflow import config_hash
from strategy.feeds import ATR_COLUMN, PROBA_COLUMN
from strategy.runner import StrategyRun, run_strategy

logger = logging.getLogger(__name__)

BacktestMode = Literal["walk_forward", "fixed_model"]
ProgressStage = Literal["folds", "backtest"]


@dataclass(frozen=True, slots=True)
class BacktestProgress:
    """One progress step: `done` of `total` folds (or backtest steps) of one algorithm."""

    stage: ProgressStage
    algorithm: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class Segment:
    """One walk-forward test window (or, in fixed-model mode, the in/out-of-sample part).

    `trading.buy_and_hold_return` is buy-and-hold over the same candles. `classification` is
    None when no candle of the segment has a known label.
    """

    number: int
    label: str
    start: pd.Timestamp
    end: pd.Timestamp
    classification: ClassificationMetrics | None
    trading: TradingMetrics


@dataclass(frozen=True, slots=True)
class ModelBacktest:
    """Everything one algorithm (or one registry model) produced over the tested period.

    Attributes:
        proba_up: out-of-sample probability for every candle used (NaN before the first
            test window and wherever there is no prediction).
        predictions: the tested period: `proba_up`, `y_true` (NaN when unknown), `signal`
            (target position decided at the candle's close) and `fold`.
        previous_return_auc: ROC-AUC of the previous candle's return used as the score
            (context: < 0.5 means hourly mean reversion that a model can pick up).
        engine_gap: relative gap of the final equity between backtrader and the numpy twin at
            the configured costs (NaN when the twin cannot replay the run: stop rules on).
        in_sample_bars: tested candles inside the model's training range (fixed-model mode).
    """

    algorithm: ModelName
    model_id: str | None
    proba_up: pd.Series
    predictions: pd.DataFrame
    classification: ClassificationMetrics
    baselines: Baselines
    significance: Significance
    previous_return_auc: float
    importances: pd.DataFrame
    run: StrategyRun
    trading: TradingMetrics
    segments: tuple[Segment, ...]
    fee_sensitivity: FeeSensitivity
    engine_gap: float
    in_sample_bars: int
    train_range: tuple[pd.Timestamp, pd.Timestamp] | None
    fit_seconds: float
    backtest_seconds: float

    @property
    def in_sample(self) -> bool:
        """True when part of the tested period was used to train the model (not evidence)."""
        return self.in_sample_bars > 0

    @property
    def excess_return(self) -> float:
        """Strategy return minus buy-and-hold return over the tested period (fractions)."""
        return self.trading.total_return - self.trading.buy_and_hold_return


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
    seconds: float

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


Progress = Callable[[BacktestProgress], None]


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
    models = _score(used, settings, timeframe, algorithms, model_id, progress)
    tested = _tested_candles(used, models)
    extras = _strategy_inputs(used, settings)
    backtests = tuple(_trade(m, tested, extras, settings, timeframe, progress) for m in models)
    created = datetime.now(UTC)
    names = [m.model_id or m.algorithm for m in backtests]
    digest = backtest_config_hash(settings, symbol, timeframe, names)
    cash = settings.strategy.cash
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
        buy_and_hold_equity=buy_and_hold_equity(tested, cash=cash),
        models=backtests,
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
        used, settings, algorithms=algorithms, progress=_fold_progress(progress)
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
    """Candles from the first predicted candle to the last one (walk-forward: last test row)."""
    first, last = models[0].predictions.index[0], models[0].predictions.index[-1]
    for other in models[1:]:  # same candles and splits: every model is tested on one period
        if not other.predictions.index.equals(models[0].predictions.index):
            raise RuntimeError(
                f"{other.algorithm} was tested on other rows than {models[0].algorithm}; "
                "walk-forward splits must not depend on the algorithm"
            )
    tested = candles.loc[first:last]
    if len(tested) < 2:
        raise NotEnoughDataError(
            f"the tested period {first} .. {last} has {len(tested)} candle(s); "
            "a backtest needs at least 2; provide more candles"
        )
    return tested


# ------------------------------------------------------------------------------ trading
def _strategy_inputs(candles: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Past-only columns the strategy and the report need, computed on ALL candles used.

    `atr` (only when an exit rule uses it) and `previous_return` (close[t] / close[t-1] - 1,
    known at the close of t) are warm by the first tested candle.
    """
    extras = pd.DataFrame(index=candles.index)
    extras["previous_return"] = candles["close"].pct_change()
    kinds = (settings.strategy.stop_loss.kind, settings.strategy.take_profit.kind)
    if "atr" in kinds:
        window = settings.ml.features.atr_window
        extras[ATR_COLUMN] = average_true_range(
            candles["high"], candles["low"], candles["close"], window=window
        )
    return extras


def _trade(
    scored: ScoredModel,
    tested: pd.DataFrame,
    extras: pd.DataFrame,
    settings: Settings,
    timeframe: str,
    progress: Progress | None,
) -> ModelBacktest:
    """Run the strategy over the tested candles, then fees, segments and context metrics."""
    started = time.perf_counter()
    steps = 3
    _report(progress, scored.algorithm, 0, steps)
    frame = _strategy_frame(tested, scored.proba_up, extras)
    signal, costs = settings.ml.signal, settings.strategy
    run = run_strategy(frame, timeframe=timeframe, signal=signal, strategy=costs)
    trading = trading_metrics(
        run.trades, run.equity, tested, timeframe=timeframe, fees_paid=run.fees_paid
    )
    _report(progress, scored.algorithm, 1, steps)
    fees = fee_sensitivity(
        frame,
        timeframe=timeframe,
        signal=signal,
        strategy=costs,
        fee_bps=settings.backtest.fee_sensitivity_bps,
    )
    gap = engine_gap(frame, float(run.equity.iloc[-1]), signal=signal, strategy=costs)
    _report(progress, scored.algorithm, 2, steps)
    predictions = _tested_predictions(scored, frame, signal=signal)
    segments = _segments(scored, run, tested, predictions, timeframe, cash=costs.cash)
    _report(progress, scored.algorithm, steps, steps)
    return ModelBacktest(
        algorithm=scored.algorithm,
        model_id=scored.model_id,
        proba_up=scored.proba_up,
        predictions=predictions,
        classification=scored.classification,
        baselines=scored.baselines,
        significance=scored.significance,
        previous_return_auc=_previous_return_auc(predictions, extras["previous_return"]),
        importances=scored.importances,
        run=run,
        trading=trading,
        segments=segments,
        fee_sensitivity=fees,
        engine_gap=gap,
        in_sample_bars=_in_sample_bars(tested.index, scored.train_range),
        train_range=scored.train_range,
        fit_seconds=scored.fit_seconds,
        backtest_seconds=time.perf_counter() - started,
    )


def _strategy_frame(
    tested: pd.DataFrame, proba_up: pd.Series, extras: pd.DataFrame
) -> pd.DataFrame:
    """The tested candles plus `proba_up` (and `atr` when an exit rule needs it)."""
    frame = tested.copy()
    frame[PROBA_COLUMN] = proba_up.reindex(tested.index)
    if ATR_COLUMN in extras:
        frame[ATR_COLUMN] = extras[ATR_COLUMN].reindex(tested.index)
    return frame


def _report(progress: Progress | None, algorithm: str, done: int, total: int) -> None:
    if progress is not None:
        progress(BacktestProgress("backtest", algorithm, done, total))


def _fold_progress(progress: Progress | None) -> FoldProgress | None:
    if progress is None:
        return None
    return lambda algorithm, done, total: progress(
        BacktestProgress("folds", algorithm, done, total)
    )


def _tested_predictions(
    scored: ScoredModel, frame: pd.DataFrame, *, signal: SignalSettings
) -> pd.DataFrame:
    """proba_up, y_true, threshold, fold and the target signal of every tested candle."""
    table = scored.predictions.reindex(frame.index)
    table[PROBA_COLUMN] = frame[PROBA_COLUMN]
    table["fold"] = table["fold"].fillna(0).astype("int64")
    table["signal"] = signals_from_proba(frame[PROBA_COLUMN].to_numpy(dtype="float64"), signal)
    return table


def _previous_return_auc(predictions: pd.DataFrame, previous_return: pd.Series) -> float:
    """ROC-AUC of the previous candle's return as a score for the labelled tested candles."""
    labelled = predictions.dropna(subset=["y_true"])
    score = previous_return.reindex(labelled.index)
    known = score.notna().to_numpy()
    if known.sum() < 2:
        return float("nan")
    # ROC-AUC depends on ranks only; percentile ranks are the [0, 1] scores roc_auc wants.
    ranks = score[known].rank(pct=True).to_numpy()
    return roc_auc(labelled["y_true"].to_numpy()[known], ranks)


def _in_sample_bars(index: pd.Index, train_range: tuple[pd.Timestamp, pd.Timestamp] | None) -> int:
    if train_range is None:
        return 0
    return int(((index >= train_range[0]) & (index <= train_range[1])).sum())


def _segments(
    scored: ScoredModel,
    run: StrategyRun,
    tested: pd.DataFrame,
    predictions: pd.DataFrame,
    timeframe: str,
    *,
    cash: float,
) -> tuple[Segment, ...]:
    """Trading metrics per fold (or in/out-of-sample part), next to its classification metrics."""
    parts = _segment_parts(scored, tested.index, predictions)
    bounds = [(start, end) for _, start, end, _ in parts]
    metrics = segment_metrics(
        run.trades, run.equity, tested, timeframe=timeframe, boundaries=bounds, initial_equity=cash
    )
    return tuple(
        Segment(number, label, start, end, classification, trading)
        for number, ((label, start, end, classification), trading) in enumerate(
            zip(parts, metrics, strict=True), start=1
        )
    )


_Part = tuple[str, pd.Timestamp, pd.Timestamp, ClassificationMetrics | None]


def _segment_parts(scored: ScoredModel, index: pd.Index, predictions: pd.DataFrame) -> list[_Part]:
    if scored.folds:
        return [(f"fold {f.number}", f.test_start, f.test_end, f.metrics) for f in scored.folds]
    start, end = pd.Timestamp(index[0]), pd.Timestamp(index[-1])
    if scored.train_range is None:
        return [("all", start, end, _slice_metrics(predictions, start, end))]
    cut = scored.train_range[1]
    parts = []
    if start <= cut:
        inside_end = min(cut, end)
        parts.append(
            ("in-sample", start, inside_end, _slice_metrics(predictions, start, inside_end))
        )
    if end > cut:
        first_out = pd.Timestamp(index[index > cut][0])
        parts.append(("out-of-sample", first_out, end, _slice_metrics(predictions, first_out, end)))
    return parts


def _slice_metrics(
    predictions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> ClassificationMetrics | None:
    rows = predictions.loc[start:end].dropna(subset=["y_true", PROBA_COLUMN])
    if rows.empty:
        return None
    return classification_metrics(
        rows["y_true"].astype("int64"), rows[PROBA_COLUMN], threshold=rows["threshold"].to_numpy()
    )
