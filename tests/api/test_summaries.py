"""Pure views (live accuracy, backtest summaries, report links) and the chart builders."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from api.charts import accuracy_figure, figure_html, importance_figure, probability_figure
from api.summaries import backtest_summary, expectation, live_accuracy, report_url
from storage.repository import BacktestRun, StoredPrediction

HOUR_MS = 3_600_000


def _stored(i: int, proba: float, went_up: bool | None) -> StoredPrediction:
    direction = "UP" if proba >= 0.5 else "DOWN"
    actual = None if went_up is None else ("UP" if went_up else "DOWN")
    return StoredPrediction(
        id=i, exchange="binance", symbol="BTC/USDT", timeframe="1h",
        candle_open_ms=i * HOUR_MS, target_close_ms=(i + 2) * HOUR_MS, horizon_bars=1,
        proba_up=proba, direction=direction, signal=0, threshold=0.5, model_id="m",
        created_ms=(i + 1) * HOUR_MS, latency_ms=1.0, is_backfill=False,
        actual_return=None if went_up is None else (0.01 if went_up else -0.01),
        actual_direction=actual, is_correct=None if actual is None else direction == actual,
        resolved_ms=None if actual is None else (i + 2) * HOUR_MS,
    )  # fmt: skip


def _run(metrics: dict, **changes) -> BacktestRun:
    values = {
        "id": "run-1", "created_ms": 0, "config_hash": "h", "symbol": "BTC/USDT",
        "timeframe": "1h", "models": ("lightgbm",), "period_start_ms": 0,
        "period_end_ms": HOUR_MS, "metrics": metrics, "model_ids": {"lightgbm": "model-a"},
        "report_path": "run-1/report.html", "json_path": None,
    }  # fmt: skip
    return BacktestRun(**{**values, **changes})


def test_live_accuracy_rolling_and_overall() -> None:
    # 12 resolved: correct pattern 1,1,0 repeated; then one unresolved
    predictions = [_stored(i, 0.7, went_up=(i % 3 != 2)) for i in range(12)]
    predictions.append(_stored(12, 0.7, went_up=None))
    result = live_accuracy(predictions, window=6)
    assert result.n == 12
    assert result.accuracy == pytest.approx(8 / 12)
    assert result.roc_auc == 0.5  # one probability for all: every pair is a tie
    assert result.brier == pytest.approx(np.mean([(0.7 - (i % 3 != 2)) ** 2 for i in range(12)]))
    assert list(result.series["n_in_window"]) == [6] * 7
    assert result.series["rolling_accuracy"].iloc[-1] == pytest.approx(4 / 6)
    assert result.series.index[0] == pd.Timestamp(5 * HOUR_MS, unit="ms", tz="UTC")


def test_live_accuracy_of_nothing() -> None:
    result = live_accuracy([_stored(0, 0.4, None)], window=100)
    assert (result.n, result.accuracy, result.roc_auc, result.brier) == (0, None, None, None)
    assert result.series.empty


def test_backtest_summary_reads_flat_records_for_the_model() -> None:
    record = {"accuracy": 0.52, "roc_auc": float("nan"), "sharpe": 1.2, "in_sample": False,
              "break_even_bps": None, "verdict": ["x"]}  # fmt: skip
    run = _run({"lightgbm": record})
    summary = backtest_summary(run, model_id="model-a")
    assert summary.classification == {"accuracy": 0.52, "roc_auc": None}
    assert summary.trading == {"sharpe": 1.2, "break_even_bps": None, "in_sample": False}
    assert summary.report_url == "/reports/run-1/report.html"


def test_backtest_summary_reads_nested_metrics_and_picks_the_right_model() -> None:
    run = _run(
        {"logreg": {"classification": {"accuracy": 0.49}, "trading": {"total_return": -0.1}},
         "lightgbm": {"classification": {"accuracy": 0.53}, "trading": {"total_return": 0.2}}},
        models=("logreg", "lightgbm"), model_ids={"logreg": "model-b", "lightgbm": "model-a"},
    )  # fmt: skip
    summary = backtest_summary(run, model_id="model-a")
    assert summary.classification["accuracy"] == 0.53 and summary.trading["total_return"] == 0.2
    assert backtest_summary(run).classification == {}  # two models, none chosen


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("run-1/report.html", "/reports/run-1/report.html"),
        ("/etc/passwd", None),
        ("../outside/report.html", None),
        ("run-1/../../x.html", None),
        (None, None),
    ],
)
def test_report_url_only_for_relative_paths(path, url) -> None:
    assert report_url(_run({}, report_path=path)) == url


# ------------------------------------------------------------------------------ charts
def test_accuracy_figure_draws_the_series_and_references() -> None:
    index = pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC")
    series = pd.DataFrame({"rolling_accuracy": [0.5, 0.55, 0.6, 0.5, 0.52]}, index=index)
    fig = accuracy_figure(series, references={"walk-forward": 0.51, "coin flip": 0.5})
    assert [trace.name for trace in fig.data] == [
        "live (rolling)", "walk-forward", "coin flip",
    ]  # fmt: skip
    assert list(fig.data[0].y) == [0.5, 0.55, 0.6, 0.5, 0.52]
    assert list(fig.data[1].y) == [0.51, 0.51] and list(fig.data[1].x) == [index[0], index[-1]]
    assert fig.layout.yaxis.range == pytest.approx((0.45, 0.65))


def test_importance_figure_keeps_the_largest_absolute_values() -> None:
    importance = pd.Series({"a": 0.1, "b": -0.5, "c": 0.3, "d": 0.01})
    fig = importance_figure(importance, top=3)
    assert list(fig.data[0].y) == ["a", "c", "b"]  # largest at the top (last bar)
    assert list(fig.data[0].x) == [0.1, 0.3, -0.5]


def test_probability_figure_splits_outcomes() -> None:
    index = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    frame = pd.DataFrame(
        {"proba_up": [0.6, 0.4, 0.55, 0.52], "is_correct": [True, False, True, None]}, index=index
    )
    fig = probability_figure(frame, threshold=0.5)
    counts = {trace.name: len(trace.y) for trace in fig.data}
    assert counts == {"right": 2, "wrong": 1, "pending": 1, "threshold 0.50": 2}


def test_figure_html_never_embeds_or_links_plotly() -> None:
    html = figure_html(importance_figure(pd.Series({"a": 1.0})), div_id="chart-x")
    assert 'id="chart-x"' in html
    assert "cdn.plot.ly" not in html and "<script src" not in html
    assert len(html) < 20_000


@pytest.mark.parametrize(("in_sample", "expected"), [(False, 0.52), (True, None)])
def test_expectation_ignores_in_sample_backtests(in_sample: bool, expected: float | None) -> None:
    record = {"accuracy": 0.52, "in_sample": in_sample}
    summary = backtest_summary(_run({"lightgbm": record}), model_id="model-a")
    assert expectation(None, summary).backtest_accuracy == expected
