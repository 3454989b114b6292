"""Trading one tested period: a model's decision path (or the nested selection) through
backtrader, with fees, segments and the numpy-twin check."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from backtests.decisions import DecisionOutcome, ProbabilityStream, decide
from backtests.metrics import TradingMetrics, segment_metrics, trading_metrics
from backtests.scoring import ScoredModel
from backtests.sensitivity import FeeSensitivity, engine_gap, fee_sensitivity
from backtests.verdict import SelectionStats, selection_stats
from core.settings import Settings
from core.types import ModelName
from ml.evaluation import (
    Baselines,
    ClassificationMetrics,
    Significance,
    classification_metrics,
    roc_auc,
)
from ml.features import average_true_range
from strategy.feeds import ATR_COLUMN, PROBA_COLUMN
from strategy.runner import StrategyRun, run_strategy

ProgressStage = Literal["folds", "backtest"]


@dataclass(frozen=True, slots=True)
class BacktestProgress:
    """One progress step: `done` of `total` folds (or backtest steps) of one algorithm."""

    stage: ProgressStage
    algorithm: str
    done: int
    total: int


Progress = Callable[[BacktestProgress], None]


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
            (target side decided at the candle's close), `size` and `fold`.
        horizon_bars: the label horizon this model predicts.
        decision: the policy (fixed, or chosen nested per fold over this model's stream).
        previous_return_auc: ROC-AUC of the previous candle's return used as the score
            (context: < 0.5 means hourly mean reversion that a model can pick up).
        engine_gap: relative gap of the final equity between backtrader and the numpy twin at
            the configured costs (NaN when the twin cannot replay the run: stop rules on).
        in_sample_bars: tested candles inside the model's training range (fixed-model mode).
    """

    algorithm: ModelName
    model_id: str | None
    horizon_bars: int
    name: str
    decision: DecisionOutcome
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
class Selection:
    """The headline result: the nested choice over every model, horizon and policy.

    With one model and one horizon it is that model's own decision path (`source` names it).
    `stats` holds the selection-aware verdict (Deflated Sharpe, PBO, risk vs buy-and-hold).
    """

    source: str
    decision: DecisionOutcome
    run: StrategyRun
    trading: TradingMetrics
    engine_gap: float
    stats: SelectionStats


def strategy_inputs(candles: pd.DataFrame, settings: Settings) -> pd.DataFrame:
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


def stream_of(scored: ScoredModel, tested: pd.DataFrame) -> ProbabilityStream:
    """The model's out-of-sample probabilities over the tested candles, named for reports."""
    return ProbabilityStream(
        scored.name, scored.algorithm, scored.horizon_bars, scored.proba_up.reindex(tested.index)
    )


def trade_model(
    scored: ScoredModel,
    tested: pd.DataFrame,
    extras: pd.DataFrame,
    settings: Settings,
    timeframe: str,
    windows: Sequence[tuple[int, int, int]],
    progress: Progress | None,
) -> ModelBacktest:
    """Decide (fixed or nested over this model's stream), trade it, then fees and segments."""
    started = time.perf_counter()
    steps = 3
    stream = stream_of(scored, tested)
    _report(progress, stream.name, 0, steps)
    decision = decide(tested, [stream], windows, settings)
    frame = strategy_frame(tested, extras)
    costs = settings.strategy
    side, size = decision.side, decision.size
    run, trading, gap = _trade_path(frame, tested, decision, settings, timeframe)
    _report(progress, stream.name, 1, steps)
    fees = fee_sensitivity(
        frame,
        timeframe=timeframe,
        side=side,
        size=size,
        strategy=costs,
        fee_bps=settings.backtest.fee_sensitivity_bps,
    )
    _report(progress, stream.name, 2, steps)
    predictions = _tested_predictions(scored, stream, decision)
    segments = _segments(scored, run, tested, predictions, timeframe, cash=costs.cash)
    _report(progress, stream.name, steps, steps)
    return ModelBacktest(
        algorithm=scored.algorithm,
        model_id=scored.model_id,
        horizon_bars=scored.horizon_bars,
        name=stream.name,
        decision=decision,
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


def trade_selection(
    models: Sequence[ModelBacktest],
    tested: pd.DataFrame,
    extras: pd.DataFrame,
    settings: Settings,
    timeframe: str,
    windows: Sequence[tuple[int, int, int]],
    buy_and_hold: pd.Series,
) -> Selection:
    """The headline: the nested choice over every model x horizon x policy, traded.

    With a single model (or in fixed mode) it is the first model's own decision path.
    """
    if len(models) == 1 or settings.decision.mode == "fixed":
        first = models[0]
        decision, run, trading, gap, source = (
            first.decision,
            first.run,
            first.trading,
            first.engine_gap,
            first.name,
        )
    else:
        streams = [
            ProbabilityStream(m.name, m.algorithm, m.horizon_bars, m.proba_up.reindex(tested.index))
            for m in models
        ]
        decision = decide(tested, streams, windows, settings)
        frame = strategy_frame(tested, extras)
        run, trading, gap = _trade_path(frame, tested, decision, settings, timeframe)
        source = "all models and horizons"
    stats = selection_stats(decision, run, tested, buy_and_hold, settings, timeframe=timeframe)
    return Selection(source, decision, run, trading, gap, stats)


def _trade_path(
    frame: pd.DataFrame,
    tested: pd.DataFrame,
    decision: DecisionOutcome,
    settings: Settings,
    timeframe: str,
) -> tuple[StrategyRun, TradingMetrics, float]:
    """backtrader over a decision path, its trading metrics and the numpy-twin check."""
    side, size, costs = decision.side, decision.size, settings.strategy
    run = run_strategy(frame, timeframe=timeframe, side=side, size=size, strategy=costs)
    trading = trading_metrics(
        run.trades, run.equity, tested, timeframe=timeframe, fees_paid=run.fees_paid
    )
    gap = engine_gap(frame, float(run.equity.iloc[-1]), side=side, size=size, strategy=costs)
    return run, trading, gap


def strategy_frame(tested: pd.DataFrame, extras: pd.DataFrame) -> pd.DataFrame:
    """The tested candles (plus `atr` when an exit rule needs it)."""
    frame = tested.copy()
    if ATR_COLUMN in extras:
        frame[ATR_COLUMN] = extras[ATR_COLUMN].reindex(tested.index)
    return frame


def _report(progress: Progress | None, name: str, done: int, total: int) -> None:
    if progress is not None:
        progress(BacktestProgress("backtest", name, done, total))


def _tested_predictions(
    scored: ScoredModel, stream: ProbabilityStream, decision: DecisionOutcome
) -> pd.DataFrame:
    """proba_up, y_true, threshold, fold, the target side (`signal`) and size per candle."""
    table = scored.predictions.reindex(stream.proba_up.index)
    table[PROBA_COLUMN] = stream.proba_up
    table["fold"] = table["fold"].fillna(0).astype("int64")
    table["signal"] = decision.side.astype("int64")
    table["size"] = decision.size
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
