"""The JSON report against REPORT_SCHEMA.md, the offline HTML page, the verdict and run records."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backtests.charts import FIGURES, downsample, drawdown_of
from backtests.conclusions import model_verdict
from backtests.report import ReportFiles, ensure_plotly_asset, write_report
from backtests.report_json import HTML_NAME, REPORT_SCHEMA_VERSION, report_payload
from backtests.run import BacktestResult
from backtests.run_record import record_run
from core.settings import Settings
from storage.db import init_db, make_engine, make_session_factory, session_scope
from storage.repository import list_backtest_runs

SCHEMA_DOC = Path(__file__).resolve().parents[2] / "backtests" / "REPORT_SCHEMA.md"


def documented_keys(doc: Path = SCHEMA_DOC) -> dict[str, set[str]]:
    """Keys per `## \\`name\\`` section of a schema document (first table column)."""
    sections: dict[str, set[str]] = {}
    current = None
    for line in doc.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## `([a-z_]+)`", line)
        if heading:
            current = sections.setdefault(heading.group(1), set())
            continue
        row = re.match(r"^\| `([a-z_0-9]+)` \|", line)
        if row and current is not None:
            current.add(row.group(1))
    return sections


def _objects(payload: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every JSON object of a report, grouped by the schema section that documents it."""
    models = payload["models"]
    segments = [segment for model in models for segment in model["segments"]]
    fees = [model["fee_sensitivity"] for model in models]
    decision = payload["decision"]
    choices = decision["choices"] + [c for model in models for c in model["choices"]]
    trades = payload["trades"]
    return {
        "report": [payload],
        "headline": [payload["headline"]],
        "headline_card": payload["headline"]["cards"],
        "trades": [trades],
        "equity": [payload["equity"]],
        "trade": trades["rows"],
        "trade_statistics": [trades["statistics"]] + [m["trade_statistics"] for m in models],
        "decision": [decision],
        "choice": choices,
        "decision_fold": decision["folds"],
        "deflated_sharpe": [decision["deflated_sharpe"]],
        "overfitting": [decision["overfitting"]] if decision["overfitting"] else [],
        "sharpe_difference": [decision["sharpe_vs_buy_and_hold"]],
        "hindsight": [decision["hindsight"]],
        "hindsight_row": decision["hindsight"]["rows"],
        "period": [payload["data"], payload["period"]],
        "settings": [payload["settings"]],
        "model": models,
        "segment": segments,
        "classification": [m["classification"] for m in models]
        + [s["classification"] for s in segments if s["classification"] is not None],
        "baselines": [m["baselines"] for m in models],
        "significance": [m["significance"] for m in models],
        "trading": [payload["buy_and_hold"], decision["trading"]]
        + [m["trading"] for m in models]
        + [s["trading"] for s in segments],
        "fee_sensitivity": fees,
        "fee_point": [point for fee in fees for point in fee["points"]],
        "feature_importance": [row for m in models for row in m["feature_importance"]],
        "leaderboard_row": payload["leaderboard"],
        "files": [payload["files"]],
    }


@pytest.fixture(scope="module")
def written(bt_result: BacktestResult, bt_settings: Settings) -> ReportFiles:
    return write_report(bt_result, bt_settings.backtest.reports_dir)


def _strict_json(path: Path) -> dict[str, Any]:
    def refuse(name: str) -> None:
        raise AssertionError(f"{path} contains {name}; the report must be strict JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


@pytest.fixture(scope="module")
def fixed_written(bt_fixed_result: BacktestResult, bt_fixed_settings: Settings) -> ReportFiles:
    return write_report(bt_fixed_result, bt_fixed_settings.backtest.reports_dir)


def test_report_json_keys_match_the_documented_schema(
    written: ReportFiles, fixed_written: ReportFiles
) -> None:
    """Both reports (auto: flat, fixed: trades) together contain every documented object."""
    documented = documented_keys()
    objects: dict[str, list[dict[str, Any]]] = {}
    for files in (written, fixed_written):
        payload = _strict_json(files.json)
        assert payload["schema_version"] == REPORT_SCHEMA_VERSION
        for section, items in _objects(payload).items():
            objects.setdefault(section, []).extend(items)
    assert set(objects) | {"run_record_metrics"} == set(documented)
    for section, items in objects.items():
        assert items, f"no {section} object in the reports"
        for item in items:
            assert set(item) == documented[section], f"{section}: {set(item) ^ documented[section]}"


def test_report_json_numbers_match_the_result(
    written: ReportFiles, bt_result: BacktestResult
) -> None:
    payload = _strict_json(written.json)
    model = bt_result.models[0]
    assert payload["run_id"] == bt_result.run_id == written.run_dir.name
    assert payload["period"]["start"] == bt_result.period_start.isoformat()
    assert payload["period"]["n_candles"] == len(bt_result.candles)
    entry = payload["models"][0]
    assert entry["trading"]["total_return"] == pytest.approx(model.trading.total_return)
    assert entry["classification"]["roc_auc"] == pytest.approx(model.classification.roc_auc)
    assert len(entry["segments"]) == len(model.segments)
    assert payload["buy_and_hold"]["total_return"] == pytest.approx(
        bt_result.buy_and_hold.total_return
    )


def test_report_html_opens_offline_with_the_local_plotly_asset(
    written: ReportFiles, bt_result: BacktestResult
) -> None:
    html = written.html.read_text(encoding="utf-8")
    traded = not bt_result.leaderboard()[0].run.trades["is_open"].all()
    sources = re.findall(r"<(?:script|link|img|iframe)\b[^>]*(?:src|href)=\"([^\"]+)\"", html)
    assert sources, "the page must load plotly.js from a file"
    assert not [s for s in sources if s.startswith(("http://", "https://", "//"))]
    (plotly_src,) = [s for s in sources if "plotly" in s]
    assert (written.run_dir / plotly_src).resolve() == written.plotly_js.resolve()
    assert written.plotly_js.stat().st_size > 1_000_000
    for name in FIGURES:  # the best/worst trade panels only when the leading model traded
        assert (f'id="chart-{name}"' in html) is (name != "trade_panels" or traded)


def test_report_html_shows_verdict_and_fold_table(
    written: ReportFiles, bt_result: BacktestResult
) -> None:
    html = written.html.read_text(encoding="utf-8")
    model = bt_result.models[0]
    side = "BEAT" if model.excess_return > 0 else "LOST to"
    assert f"The strategy {side} buy-and-hold" in html
    assert "fold 1" in html and f"fold {len(model.segments)}" in html
    assert "IN-SAMPLE" not in html


def test_ensure_plotly_asset_copies_once(tmp_path: Path) -> None:
    first = ensure_plotly_asset(tmp_path)
    stamp = first.stat().st_mtime_ns
    second = ensure_plotly_asset(tmp_path)
    assert first == second and second.stat().st_mtime_ns == stamp
    assert first.parent == tmp_path / "assets"
    assert first.stat().st_mode & 0o777 == 0o644  # readable where the reports folder is copied


def test_record_run_stores_a_listable_run(
    written: ReportFiles, bt_result: BacktestResult, bt_settings: Settings
) -> None:
    record_run(bt_result, written, bt_settings)
    engine = make_engine(bt_settings.storage.db_url)
    init_db(engine)
    with session_scope(make_session_factory(engine), read_only=True) as session:
        (run,) = [r for r in list_backtest_runs(session) if r.id == bt_result.run_id]
    engine.dispose()
    assert run.config_hash == bt_result.config_hash
    assert run.models == ("logreg",)
    assert run.report_path == f"{bt_result.run_id}/{HTML_NAME}"
    assert (bt_settings.backtest.reports_dir / run.report_path).is_file()
    assert set(run.metrics["logreg"]) == documented_keys()["run_record_metrics"]
    assert run.period_start_ms == int(bt_result.period_start.timestamp() * 1000)
    assert run.model_ids == {}


def test_model_verdict_says_lost_and_not_significant_plainly(bt_result: BacktestResult) -> None:
    model = bt_result.models[0]
    lines = model_verdict(model, fee_bps=10)
    joined = " ".join(lines)
    gap_pp = abs(model.excess_return) * 100
    if model.excess_return < 0:
        assert f"LOST to buy-and-hold by {gap_pp:.1f} pp" in joined
    else:
        assert f"BEAT buy-and-hold by {gap_pp:.1f} pp" in joined
    significant = model.significance.p_value < 0.05
    assert ("NOT significantly better" in joined) is not significant
    assert "previous candle's return" in joined


def test_report_payload_flags_in_sample_models(bt_result: BacktestResult) -> None:
    model = bt_result.models[0]
    start, end = bt_result.period_start, bt_result.period_end
    in_sample = replace(
        model, in_sample_bars=5, model_id="BTC_USDT-1h-logreg-x", train_range=(start, end)
    )
    faked = replace(bt_result, models=(in_sample,))
    payload = report_payload(faked)
    assert payload["models"][0]["in_sample"] is True
    assert payload["verdict"][0].startswith("IN-SAMPLE: 5 tested candles")
    assert payload["models"][0]["verdict"][0].startswith("IN-SAMPLE: 5 tested candles")


def test_downsample_keeps_extremes_and_short_series() -> None:
    values = pd.Series(range(10_000), dtype="float64")
    values.iloc[1234] = 1e6
    values.iloc[8765] = -1e6
    reduced = downsample(values, max_points=400)
    assert len(reduced) <= 400
    assert reduced.max() == 1e6 and reduced.min() == -1e6
    assert reduced.index.is_monotonic_increasing
    short = pd.Series([1.0, 2.0])
    assert downsample(short).equals(short)


def test_drawdown_counts_the_initial_cash_as_a_peak() -> None:
    equity = pd.Series([90.0, 95.0, 120.0, 60.0])
    assert drawdown_of(equity, 100.0).round(3).tolist() == [-0.1, -0.05, 0.0, -0.5]
