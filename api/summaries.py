"""Pure views over stored records: logged predictions, live accuracy, backtest summaries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from api.schemas import BacktestSummary, Expectation, LoggedPrediction
from core.timeframes import from_epoch_ms
from ml.decision import ACTIONS
from ml.evaluation import classification_metrics, wilson_interval
from ml.registry import ModelManifest
from storage.repository import BacktestRun, StoredPrediction

MIN_ROLLING_PERIODS = 10
"""A rolling-accuracy point needs at least this many resolved predictions (or `window`)."""

# Keys of a backtest record's per-model metrics (backtests/REPORT_SCHEMA.md,
# `run_record_metrics`), or of its nested `classification` / `trading` objects.
CLASSIFICATION_KEYS = (
    "n",
    "n_predictions",
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "brier",
    "log_loss",
    "f1",
    "mcc",
    "precision",
    "recall",
    "p_value",
    "best_baseline",
    "best_baseline_accuracy",
)
TRADING_KEYS = (
    "total_return",
    "buy_and_hold_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "n_trades",
    "win_rate",
    "profit_factor",
    "exposure",
    "fees_paid",
    "break_even_bps",
    "in_sample",
)
REPORTS_URL = "/reports"


@dataclass(frozen=True, slots=True)
class LiveAccuracy:
    """Accuracy of resolved live predictions; `series` has one row per prediction."""

    n: int
    accuracy: float | None
    roc_auc: float | None
    brier: float | None
    series: pd.DataFrame  # index candle_open; columns rolling_accuracy, n_in_window
    accuracy_ci: tuple[float, float] | None = None  # Wilson 95 %


def finite_or_none(value: Any) -> float | None:
    """A finite float, else None (JSON has no NaN).

    >>> finite_or_none(0.5), finite_or_none(float("nan")), finite_or_none("x")
    (0.5, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def to_logged(prediction: StoredPrediction) -> LoggedPrediction:
    """The API view of a stored prediction (times as UTC datetimes)."""
    resolved = prediction.resolved_ms
    return LoggedPrediction(
        id=prediction.id,
        exchange=prediction.exchange,
        symbol=prediction.symbol,
        timeframe=prediction.timeframe,
        candle_open=from_epoch_ms(prediction.candle_open_ms),
        target_close=from_epoch_ms(prediction.target_close_ms),
        horizon_bars=prediction.horizon_bars,
        proba_up=prediction.proba_up,
        direction=prediction.direction,
        signal=int(prediction.signal),
        threshold=prediction.threshold,
        model_id=prediction.model_id,
        created_at=from_epoch_ms(prediction.created_ms),
        is_backfill=prediction.is_backfill,
        actual_return=prediction.actual_return,
        actual_direction=prediction.actual_direction,
        is_correct=prediction.is_correct,
        resolved_at=None if resolved is None else from_epoch_ms(resolved),
        action=ACTIONS[prediction.signal],
        size=prediction.size,
        policy_source=prediction.policy_source,
    )


def live_accuracy(predictions: Sequence[StoredPrediction], *, window: int) -> LiveAccuracy:
    """Overall and rolling accuracy of resolved predictions (oldest first).

    Outcomes follow the bot's rule: UP when the target candle's return is > 0.
    """
    resolved = [p for p in predictions if p.is_correct is not None]
    index = pd.DatetimeIndex(
        [pd.Timestamp(p.candle_open_ms, unit="ms", tz="UTC") for p in resolved], name="candle_open"
    )
    correct = pd.Series([float(bool(p.is_correct)) for p in resolved], index=index, dtype=float)
    series = pd.DataFrame(
        {
            "rolling_accuracy": correct.rolling(
                window, min_periods=min(window, MIN_ROLLING_PERIODS)
            ).mean(),
            "n_in_window": correct.rolling(window, min_periods=1).count(),
        }
    ).dropna()
    if not resolved:
        return LiveAccuracy(n=0, accuracy=None, roc_auc=None, brier=None, series=series)
    metrics = classification_metrics(
        np.array([p.actual_direction == "UP" for p in resolved], dtype=np.int64),
        np.array([p.proba_up for p in resolved], dtype=np.float64),
        threshold=np.array([p.threshold for p in resolved], dtype=np.float64),
    )
    return LiveAccuracy(
        n=metrics.n,
        accuracy=finite_or_none(metrics.accuracy),
        roc_auc=finite_or_none(metrics.roc_auc),
        brier=finite_or_none(metrics.brier),
        series=series,
        accuracy_ci=wilson_interval(round(metrics.accuracy * metrics.n), metrics.n),
    )


def walk_forward_metrics(walk_forward: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The pooled out-of-sample metrics of a manifest's `walk_forward` block ({} if absent)."""
    metrics = (walk_forward or {}).get("metrics")
    return metrics if isinstance(metrics, Mapping) else {}


def expectation(manifest: ModelManifest | None, backtest: BacktestSummary | None) -> Expectation:
    """What the model should achieve live: walk-forward and backtest out-of-sample accuracy.

    A backtest whose tested period overlaps the model's training range (`in_sample`) is not an
    out-of-sample expectation and is left out.
    """
    if backtest is not None and backtest.trading.get("in_sample") is not False:
        backtest = None  # in-sample (or unknown): its accuracy would flatter the model
    summary = manifest.walk_forward if manifest else None
    metrics = walk_forward_metrics(summary.model_dump(mode="json") if summary else None)
    return Expectation(
        walk_forward_accuracy=finite_or_none(metrics.get("accuracy")),
        walk_forward_roc_auc=finite_or_none(metrics.get("roc_auc")),
        backtest_id=backtest.id if backtest else None,
        backtest_accuracy=finite_or_none(backtest.classification.get("accuracy"))
        if backtest
        else None,
    )


def report_url(run: BacktestRun) -> str | None:
    """URL of the run's HTML report under /reports, or None when the stored path is unsafe."""
    if not run.report_path:
        return None
    path = PurePosixPath(run.report_path.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return f"{REPORTS_URL}/{path.as_posix()}"


def backtest_summary(run: BacktestRun, *, model_id: str | None = None) -> BacktestSummary:
    """A run with the classification and trading metrics of `model_id` (or its only model)."""
    entry = _model_entry(run, model_id)
    return BacktestSummary(
        id=run.id,
        created_at=from_epoch_ms(run.created_ms),
        symbol=run.symbol,
        timeframe=run.timeframe,
        models=list(run.models),
        period_start=from_epoch_ms(run.period_start_ms),
        period_end=from_epoch_ms(run.period_end_ms),
        model_ids=dict(run.model_ids),
        report_url=report_url(run),
        classification=_scalars(entry.get("classification", entry), CLASSIFICATION_KEYS),
        trading=_scalars(entry.get("trading", entry), TRADING_KEYS),
    )


def _model_entry(run: BacktestRun, model_id: str | None) -> Mapping[str, Any]:
    """The metrics recorded for one model of a run (keyed by model name)."""
    names = [name for name, stored_id in run.model_ids.items() if stored_id == model_id]
    if not names and model_id is None and len(run.models) == 1:
        names = list(run.models)  # a one-model run: its metrics are unambiguous
    entry = run.metrics.get(names[0]) if names else None
    return entry if isinstance(entry, Mapping) else {}


def _scalars(values: Any, keys: Sequence[str]) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        return {}
    out: dict[str, Any] = {}
    for key in keys:
        value = values.get(key)
        if isinstance(value, str | int) or (value is None and key in values):  # bool is an int
            out[key] = value
        elif isinstance(value, float):
            out[key] = finite_or_none(value)
    return out
