"""Everything the dashboard page shows, gathered from the database, registry and candle cache."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from api.charts import (
    accuracy_figure,
    band_figure,
    figure_html,
    importance_figure,
    paper_figure,
    probability_figure,
)
from api.deps import Pair
from api.paper import PaperOut, paper_report
from api.queries import accuracy_report, model_info
from api.schemas import AccuracyOut, BacktestSummary, LoggedPrediction, ModelInfoOut
from api.summaries import backtest_summary, finite_or_none, to_logged, walk_forward_metrics
from core.errors import DataError, ModelError
from core.settings import DecisionPolicy, Settings
from data.cache import cache_path, read_cache
from ml.features import build_features, feature_specs
from ml.predict import feature_settings_of, required_candles
from serving.models import ModelCache, ServedModel
from storage.repository import latest_predictions, list_backtest_runs, list_predictions

logger = logging.getLogger(__name__)

RECENT_ROWS = 20
CHART_POINTS = 300
CLASSIFICATION_ROWS = (
    ("accuracy", "Accuracy"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("roc_auc", "ROC-AUC"),
    ("brier", "Brier score"),
    ("log_loss", "Log loss"),
    ("mcc", "MCC"),
    ("n", "Predictions"),
)
TRADING_ROWS = (
    ("total_return", "Total return", "pct"),
    ("buy_and_hold_return", "Buy & hold return", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("n_trades", "Trades", "int"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "num"),
    ("exposure", "Exposure", "pct"),
)


@dataclass(frozen=True, slots=True)
class FormField:
    """One labelled input of the indicator form."""

    name: str
    description: str
    group: str
    value: float
    train_min: float | None
    train_max: float | None


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The page model handed to `dashboard.html`."""

    pair: Pair
    pairs: list[tuple[str, str]]
    latest: list[LoggedPrediction]
    model: ModelInfoOut | None
    no_model_message: str | None
    accuracy: AccuracyOut
    recent: list[LoggedPrediction]
    backtests: list[BacktestSummary]
    form: list[FormField]
    form_source: str
    classification_rows: list[tuple[str, Any, Any, Any]]
    trading_rows: list[tuple[str, Any, str]]
    baselines: Mapping[str, Any]
    backtest_sample: str | None = None
    action_rules: dict[str, str] = field(default_factory=dict)
    charts: dict[str, str] = field(default_factory=dict)
    paper: PaperOut | None = None
    refresh_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class LivePanels:
    """The parts of the page that change with each bot tick (what the page re-fetches)."""

    pair: Pair
    latest: list[LoggedPrediction]
    accuracy: AccuracyOut
    recent: list[LoggedPrediction]
    action_rules: dict[str, str]
    figures: dict[str, go.Figure]
    paper: PaperOut


def build_live_panels(session: Any, store: ModelCache, pair: Pair) -> LivePanels:
    """Signals of every market, live accuracy, recent predictions and their two charts."""
    accuracy = accuracy_report(
        session,
        store,
        symbol=pair.symbol,
        timeframe=pair.timeframe,
        window=100,
        last=5000,
        model_id=None,
    )
    history = [
        to_logged(p)
        for p in list_predictions(
            session, symbol=pair.symbol, timeframe=pair.timeframe, limit=CHART_POINTS
        ).items
    ]
    latest = [to_logged(p) for p in latest_predictions(session)]
    model = store.current_or_none(pair.symbol, pair.timeframe)
    paper = paper_report(
        session,
        model.manifest if model else None,
        symbol=pair.symbol,
        timeframe=pair.timeframe,
    )
    return LivePanels(
        pair=pair,
        latest=latest,
        accuracy=accuracy,
        recent=history[:RECENT_ROWS],
        action_rules=_action_rules(store, latest),
        figures={**live_figures(accuracy, history), **paper_figures(paper)},
        paper=paper,
    )


def build_dashboard(
    session: Any,
    store: ModelCache,
    settings: Settings,
    pair: Pair,
    *,
    script_nonce: str | None = None,
) -> Dashboard:
    """Gather the page: signals, accuracy, predictions, model metrics, form, backtests.

    `script_nonce` is put on the charts' inline scripts (the page's Content-Security-Policy).
    """
    model = store.current_or_none(pair.symbol, pair.timeframe)
    if model is None:
        store.check_known(pair.symbol, pair.timeframe)
    info = model_info(session, model) if model else None
    live = build_live_panels(session, store, pair)
    form, source = indicator_form(settings, model)
    return Dashboard(
        pair=pair,
        pairs=_pairs(store, live.latest),
        latest=live.latest,
        model=info,
        no_model_message=None if model else _no_model(pair),
        accuracy=live.accuracy,
        recent=live.recent,
        backtests=[backtest_summary(run) for run in list_backtest_runs(session, limit=20)],
        form=form,
        form_source=source,
        classification_rows=_classification_rows(info, live.accuracy),
        trading_rows=_trading_rows(info.backtest if info else None),
        baselines=_baselines(info),
        backtest_sample=sample_flag(info.backtest if info else None),
        action_rules=live.action_rules,
        charts=_charts(info, live.figures, nonce=script_nonce),
        refresh_seconds=settings.api.dashboard_refresh_seconds,
        paper=live.paper,
    )


def paper_figures(paper: PaperOut) -> dict[str, go.Figure]:
    """The paper panel's charts: equity vs buy-and-hold, and the rolling return in its band."""
    if not paper.equity:
        return {}
    frame = pd.DataFrame(
        {
            "equity": [p.equity for p in paper.equity],
            "buy_and_hold": [p.buy_and_hold for p in paper.equity],
        },
        index=pd.DatetimeIndex([p.candle_open for p in paper.equity]),
    )
    figures = {"paper": paper_figure(frame)}
    band = paper.expectation.band
    if band is not None:
        rolling = (frame["equity"] / frame["equity"].shift(band.window_bars) - 1).dropna()
        figures["band"] = band_figure(rolling, window_bars=band.window_bars, band=band.model_dump())
    return figures


def _no_model(pair: Pair) -> str:
    return (
        f"No model yet for {pair.symbol} {pair.timeframe}. Train one with "
        f"`cryptopred train --symbol {pair.symbol} --timeframe {pair.timeframe}`."
    )


def _pairs(store: ModelCache, latest: list[LoggedPrediction]) -> list[tuple[str, str]]:
    pairs = set(store.known_pairs) | {(p.symbol, p.timeframe) for p in latest}
    return sorted(pairs)


def indicator_form(settings: Settings, model: ServedModel | None) -> tuple[list[FormField], str]:
    """Form inputs prefilled with the newest cached candle's features (else range midpoints)."""
    if model is None:
        return [], ""
    values, source = _latest_cached_features(settings, model)
    if values is None:
        ranges = model.manifest.feature_ranges
        values = {n: float(np.mean(ranges.get(n, (0.0, 0.0)))) for n in model.feature_names}
        source = "midpoints of the training ranges (no cached candles found)"
    specs = {s.name: s for s in feature_specs(feature_settings_of(model.artifact))}
    fields = []
    for name in model.feature_names:
        low, high = model.manifest.feature_ranges.get(name, (None, None))
        spec = specs.get(name)
        fields.append(
            FormField(
                name=name,
                description=spec.description if spec else name,
                group=spec.group if spec else "other",
                value=round(values[name], 6),
                train_min=low,
                train_max=high,
            )
        )
    return fields, source


def _latest_cached_features(
    settings: Settings, model: ServedModel
) -> tuple[dict[str, float] | None, str]:
    manifest = model.manifest
    try:
        path = cache_path(
            settings.data.cache_dir, manifest.exchange, manifest.symbol, manifest.timeframe
        )
        candles = read_cache(path)
    except DataError as e:
        logger.warning("Cannot prefill the indicator form from the candle cache: %s", e)
        return None, ""
    needed = required_candles(model.artifact)
    if candles is None or len(candles) < needed:
        return None, ""
    features = build_features(candles.iloc[-needed:], feature_settings_of(model.artifact))
    last = features[list(model.feature_names)].iloc[-1]
    if not np.isfinite(last.to_numpy(dtype=float)).all():
        return None, ""
    stamp = pd.Timestamp(features.index[-1])
    return {str(k): float(v) for k, v in last.items()}, (
        f"features of the newest cached candle ({stamp:%Y-%m-%d %H:%M} UTC)"
    )


def _classification_rows(
    info: ModelInfoOut | None, accuracy: AccuracyOut
) -> list[tuple[str, Any, Any, Any]]:
    walk_forward = walk_forward_metrics(info.walk_forward if info else None)
    backtest = info.backtest.classification if info and info.backtest else {}
    live = {
        "accuracy": accuracy.accuracy,
        "roc_auc": accuracy.roc_auc,
        "brier": accuracy.brier,
        "n": accuracy.n,
    }
    return [
        (label, walk_forward.get(key), backtest.get(key), live.get(key))
        for key, label in CLASSIFICATION_ROWS
    ]


def action_thresholds(policy: DecisionPolicy) -> str:
    """The thresholds at which a policy acts, for the signal card.

    >>> action_thresholds(DecisionPolicy())
    'LONG at P(up) ≥ 0.55, out below 0.50'
    >>> action_thresholds(DecisionPolicy(allow_short=True))
    'LONG at P(up) ≥ 0.55, out below 0.50; SHORT at ≤ 0.45, out above 0.50'
    """
    if policy.stay_flat:
        return "stays FLAT (no rule had enough evidence)"
    text = f"LONG at P(up) ≥ {policy.entry_threshold:.2f}, out below {policy.exit_threshold:.2f}"
    if policy.allow_short:
        text += (
            f"; SHORT at ≤ {policy.short_entry_threshold:.2f}, "
            f"out above {policy.short_exit_threshold:.2f}"
        )
    return text


def _action_rules(store: ModelCache, latest: list[LoggedPrediction]) -> dict[str, str]:
    """The action thresholds of each latest signal's model, when it is still current."""
    rules = {}
    for prediction in latest:
        try:
            model = store.current_or_none(prediction.symbol, prediction.timeframe)
        except ModelError:
            continue  # the model card of that market says what is wrong
        if model is not None and model.model_id == prediction.model_id:
            rules[prediction.model_id] = action_thresholds(model.policy.policy)
    return rules


def sample_flag(backtest: BacktestSummary | None) -> str | None:
    """None for an out-of-sample backtest; else why its figures flatter the model.

    A backtest tested on candles the model was trained on (`cryptopred backtest --model-id`
    of the current model) is `in_sample`; an old run may not say (unknown).
    """
    if backtest is None:
        return None
    in_sample = backtest.trading.get("in_sample")
    if in_sample is False:
        return None
    if in_sample is True:
        return "in-sample: this backtest tested candles the model was trained on"
    return "not known to be out of sample: the run does not record it"


def _trading_rows(backtest: BacktestSummary | None) -> list[tuple[str, Any, str]]:
    trading = backtest.trading if backtest else {}
    return [(label, trading.get(key), kind) for key, label, kind in TRADING_ROWS if key in trading]


def _baselines(info: ModelInfoOut | None) -> Mapping[str, Any]:
    walk_forward = (info.walk_forward or {}) if info else {}
    baselines = walk_forward.get("baselines") or {}
    significance = walk_forward.get("significance") or {}
    return {**baselines, "p_value": significance.get("p_value")}


def live_figures(accuracy: AccuracyOut, history: list[LoggedPrediction]) -> dict[str, go.Figure]:
    """The rolling-accuracy and logged-P(up) charts (absent while there is nothing to draw)."""
    figures: dict[str, go.Figure] = {}
    if accuracy.series:
        series = pd.DataFrame(
            {"rolling_accuracy": [p.rolling_accuracy for p in accuracy.series]},
            index=pd.DatetimeIndex([p.candle_open for p in accuracy.series]),
        )
        references = {
            "walk-forward": accuracy.expected.walk_forward_accuracy,
            "backtest": accuracy.expected.backtest_accuracy,
            "coin flip": 0.5,
        }
        shown = {k: v for k, v in references.items() if v is not None and finite_or_none(v)}
        figures["accuracy"] = accuracy_figure(series, references=shown)
    if history:
        frame = pd.DataFrame(
            {
                "proba_up": [p.proba_up for p in history],
                "is_correct": [p.is_correct for p in history],
            },
            index=pd.DatetimeIndex([p.candle_open for p in history]),
        ).sort_index()
        figures["probability"] = probability_figure(frame, threshold=history[0].threshold)
    return figures


def _charts(
    info: ModelInfoOut | None, figures: dict[str, go.Figure], *, nonce: str | None
) -> dict[str, str]:
    charts = {
        name: figure_html(fig, div_id=f"chart-{name}", nonce=nonce) for name, fig in figures.items()
    }
    if info and info.feature_importance:
        importance = pd.Series(info.feature_importance, dtype=float)
        charts["importance"] = figure_html(
            importance_figure(importance), div_id="chart-importance", nonce=nonce
        )
    return charts
