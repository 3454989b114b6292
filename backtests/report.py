"""Backtest report: versioned JSON, one offline HTML page (Jinja2 + Plotly) and the run record."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import plotly
import plotly.io as pio
from plotly.offline import get_plotlyjs_version

from backtests.charts import FIGURES
from backtests.decision_report import (
    DECISION_FIGURES,
    choices_payload,
    decision_payload,
    describe_fixed,
)
from backtests.run import BacktestResult, ModelBacktest, Segment
from core.settings import Settings
from core.timeframes import to_epoch_ms
from storage.db import init_db, make_engine, make_session_factory, safe_url, session_scope
from storage.repository import NewBacktestRun, add_backtest_run

logger = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 2
"""Bump when a key of the JSON report changes meaning or disappears (see REPORT_SCHEMA.md)."""
HTML_NAME = "report.html"
JSON_NAME = "report.json"
ASSETS_DIR = "assets"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("backtests", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)
DASH = "-"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def fmt_num(value: Any, digits: int = 4) -> str:
    """A number for a table; None/NaN print as a dash.

    >>> fmt_num(0.512345), fmt_num(None), fmt_num(1.5, 1)
    ('0.5123', '-', '1.5')
    """
    return f"{value:.{digits}f}" if _finite(value) else DASH


def fmt_pct(value: Any, *, signed: bool = True) -> str:
    """A fraction as a percentage.

    >>> fmt_pct(0.1234), fmt_pct(-0.5), fmt_pct(0.25, signed=False)
    ('+12.34 %', '-50.00 %', '25.0 %')
    """
    if not _finite(value):
        return DASH
    return f"{value * 100:+.2f} %" if signed else f"{value * 100:.1f} %"


def _filters() -> dict[str, Any]:
    return {
        "num": fmt_num,
        "pct": fmt_pct,
        "pct0": lambda v: fmt_pct(v, signed=False),
        "pp": lambda v: f"{v * 100:+.1f} pp" if _finite(v) else DASH,
        "pval": lambda v: f"{v:.3g}" if _finite(v) else DASH,
        "bps": lambda v: f"{v:.2f} bps" if _finite(v) else DASH,
        "sci": lambda v: f"{v:.1e}" if _finite(v) else "n/a",
        "count": lambda v: f"{v:,}" if _finite(v) else DASH,
        "sign": lambda v: ("pos" if v > 0 else "neg" if v < 0 else "") if _finite(v) else "",
    }


_TEMPLATES.filters.update(_filters())
_HEADLINE_KEYS = ("total_return", "buy_and_hold_return", "sharpe", "max_drawdown", "n_trades")


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where one run's report was written."""

    run_dir: Path
    html: Path
    json: Path
    plotly_js: Path


# ----------------------------------------------------------------------------- verdict
def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.2%}"


def model_verdict(model: ModelBacktest, *, fee_bps: float) -> list[str]:
    """Plain-words conclusions for one model: money vs buy-and-hold, significance, costs."""
    trading = model.trading
    gap_pp = abs(model.excess_return) * 100
    side = "BEAT" if model.excess_return > 0 else "LOST to"
    if trading.n_trades == 0 and trading.n_open_trades == 0:
        outcome = "It never traded (the policy stayed flat): no money made or lost."
    else:
        outcome = (
            f"It {'made' if trading.total_return > 0 else 'lost'} money after costs "
            f"({fee_bps:g} bps fee per side, {trading.n_trades:,} closed trades)."
        )
    lines = [
        f"The strategy {side} buy-and-hold by {gap_pp:.1f} pp "
        f"({_pct(trading.total_return)} vs {_pct(trading.buy_and_hold_return)}).",
        outcome,
    ]
    sig = model.significance
    better = "significantly better" if sig.is_significant() else "NOT significantly better"
    lines.append(
        f"Accuracy {sig.accuracy:.4f} is {better} than the best baseline "
        f"({sig.baseline} {sig.baseline_accuracy:.4f}): one-sided binomial p = {sig.p_value:.3g}."
    )
    low, high = sig.roc_auc_ci
    lines.append(
        f"ROC-AUC {sig.roc_auc:.4f} ({sig.level:.0%} block-bootstrap CI {low:.4f}-{high:.4f}); "
        f"context: the previous candle's return alone scores ROC-AUC "
        f"{model.previous_return_auc:.4f} ({1 - model.previous_return_auc:.4f} betting the "
        "other way)."
    )
    fees = model.fee_sensitivity
    if fees.break_even_bps is not None:
        verdict = "above" if fee_bps > fees.break_even_bps else "below"
        lines.append(
            f"Break-even fee {fees.break_even_bps:.2f} bps per side; the configured "
            f"{fee_bps:g} bps is {verdict} it."
        )
    else:
        lines.append(f"Fee sensitivity: {fees.note}.")
    if model.in_sample:
        lines.insert(0, in_sample_warning(model))
    return lines


def in_sample_warning(model: ModelBacktest) -> str:
    """The banner text for a model tested on candles it was trained on."""
    low, high = model.train_range or (None, None)
    return (
        f"IN-SAMPLE: {model.in_sample_bars:,} tested candles lie inside the training range of "
        f"{model.model_id} ({low} .. {high}); results on them are not evidence."
    )


def verdict_lines(result: BacktestResult) -> list[str]:
    """In-sample warnings first, then the decision layer's verdict, then conclusions for every
    model (prefixed by the model name when there are several)."""
    fee_bps = result.settings.strategy.fee_rate * 1e4
    several = len(result.models) > 1
    warnings = [in_sample_warning(model) for model in result.leaderboard() if model.in_sample]
    lines = warnings + list(result.selection.stats.verdict)
    for model in result.leaderboard():
        prefix = f"{model.name}: " if several else ""
        own = [line for line in model_verdict(model, fee_bps=fee_bps) if line not in warnings]
        lines += [prefix + line for line in own]
    return lines


# ----------------------------------------------------------------------------- JSON
def json_ready(value: Any) -> Any:
    """Plain JSON values: NaN/inf -> None, numpy scalars -> Python, timestamps -> ISO-8601."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):  # pd.Timestamp included
        return value.isoformat()
    return value


def _period(start: pd.Timestamp, end: pd.Timestamp, n: int) -> dict[str, Any]:
    return {"start": start.isoformat(), "end": end.isoformat(), "n_candles": n}


def _segment_payload(segment: Segment) -> dict[str, Any]:
    return {
        "number": segment.number,
        "label": segment.label,
        "start": segment.start.isoformat(),
        "end": segment.end.isoformat(),
        "classification": segment.classification.to_dict() if segment.classification else None,
        "trading": segment.trading.to_dict(),
    }


def _model_payload(model: ModelBacktest, fee_bps: float) -> dict[str, Any]:
    fees = model.fee_sensitivity
    importances = model.importances.reset_index()
    importances.columns = ["feature", *importances.columns[1:]]
    train = model.train_range
    return {
        "algorithm": model.algorithm,
        "model_id": model.model_id,
        "name": model.name,
        "horizon_bars": model.horizon_bars,
        "decision_mode": model.decision.mode,
        "choices": choices_payload(model.decision),
        "in_sample": model.in_sample,
        "in_sample_bars": model.in_sample_bars,
        "train_range": None if train is None else {"start": train[0], "end": train[1]},
        "classification": model.classification.to_dict(),
        "baselines": model.baselines.to_dict(),
        "significance": model.significance.to_dict(),
        "previous_return_auc": model.previous_return_auc,
        "trading": model.trading.to_dict(),
        "excess_return": model.excess_return,
        "segments": [_segment_payload(segment) for segment in model.segments],
        "fee_sensitivity": {
            "engine": fees.engine,
            "break_even_bps": fees.break_even_bps,
            "status": fees.status,
            "note": fees.note,
            "points": [
                {
                    "fee_bps": p.fee_bps,
                    "total_return": p.total_return,
                    "sharpe": p.sharpe,
                    "n_trades": p.n_trades,
                    "fees_paid": p.fees_paid,
                }
                for p in fees.points
            ],
        },
        "engine_gap": model.engine_gap,
        "feature_importance": importances.to_dict(orient="records"),
        "verdict": model_verdict(model, fee_bps=fee_bps),
        "fit_seconds": model.fit_seconds,
        "backtest_seconds": model.backtest_seconds,
    }


def leaderboard_row(model: ModelBacktest) -> dict[str, Any]:
    """One model's leaderboard entry (without its rank): classification and trading together."""
    return {
        "algorithm": model.algorithm,
        "model_id": model.model_id,
        "name": model.name,
        "accuracy": model.classification.accuracy,
        "roc_auc": model.classification.roc_auc,
        "p_value": model.significance.p_value,
        "total_return": model.trading.total_return,
        "buy_and_hold_return": model.trading.buy_and_hold_return,
        "excess_return": model.excess_return,
        "sharpe": model.trading.sharpe,
        "max_drawdown": model.trading.max_drawdown,
        "n_trades": model.trading.n_trades,
        "break_even_bps": model.fee_sensitivity.break_even_bps,
    }


def leaderboard_rows(result: BacktestResult) -> list[dict[str, Any]]:
    """One row per model (best strategy return first): classification and trading together."""
    return [
        {"rank": rank, **leaderboard_row(model)}
        for rank, model in enumerate(result.leaderboard(), start=1)
    ]


def report_payload(result: BacktestResult) -> dict[str, Any]:
    """The JSON report (schema `REPORT_SCHEMA_VERSION`, documented in REPORT_SCHEMA.md)."""
    settings = result.settings
    fee_bps = settings.strategy.fee_rate * 1e4
    payload = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run_id": result.run_id,
        "created_at": result.created_at.isoformat(),
        "config_hash": result.config_hash,
        "mode": result.mode,
        "symbol": result.symbol,
        "timeframe": result.timeframe,
        "data": _period(result.data_start, result.data_end, result.n_candles),
        "data_source": result.data_source,
        "data_sample": result.is_sample,
        "period": _period(result.period_start, result.period_end, len(result.candles)),
        "settings": {
            "strategy": settings.strategy.model_dump(mode="json"),
            "decision": settings.decision.model_dump(mode="json"),
            "labels": settings.ml.labels.model_dump(mode="json"),
            "walk_forward": settings.ml.walk_forward.model_dump(mode="json"),
            "fee_sensitivity_bps": list(settings.backtest.fee_sensitivity_bps),
            "start": settings.backtest.start,
            "end": settings.backtest.end,
        },
        "buy_and_hold": result.buy_and_hold.to_dict(),
        "decision": decision_payload(result),
        "models": [_model_payload(model, fee_bps) for model in result.models],
        "leaderboard": leaderboard_rows(result),
        "verdict": verdict_lines(result),
        "files": {"html": HTML_NAME, "json": JSON_NAME},
        "seconds": result.seconds,
    }
    return dict(json_ready(payload))


# ----------------------------------------------------------------------------- HTML
def ensure_plotly_asset(reports_dir: Path) -> Path:
    """Copy the installed plotly.js to `<reports_dir>/assets/` once per version; return it.

    Every report links it relatively, so the pages open offline and never touch a CDN.
    """
    target = reports_dir / ASSETS_DIR / f"plotly-{get_plotlyjs_version()}.min.js"
    if not target.is_file() or target.stat().st_size != PLOTLY_JS.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".plotly-", suffix=".tmp", dir=target.parent)
        os.close(fd)
        partial = Path(name)  # unique per call: concurrent runs never share a temp file
        try:
            shutil.copyfile(PLOTLY_JS, partial)
            partial.replace(target)  # atomic: a concurrent run never links a half-copied file
        finally:
            partial.unlink(missing_ok=True)
        logger.info("Copied plotly.js %s to %s", get_plotlyjs_version(), target)
    return target


def chart_divs(result: BacktestResult, *, prefix: str = "") -> dict[str, str]:
    """Each chart as an HTML fragment (div + script) that expects `Plotly` to be loaded.

    Keys (and div ids after `chart-`) are `prefix + name`: unique when one page shows several runs.
    """
    figures = {name: build(result) for name, build in {**DECISION_FIGURES, **FIGURES}.items()}
    return {
        prefix + name: pio.to_html(
            figure,
            include_plotlyjs=False,
            full_html=False,
            div_id=f"chart-{prefix}{name}",
            config={"responsive": True, "displaylogo": False},
        )
        for name, figure in figures.items()
        if figure is not None  # a chart with nothing to show (no trade to zoom on) is left out
    }


def run_context(
    result: BacktestResult, payload: dict[str, Any], *, chart_prefix: str = ""
) -> dict[str, Any]:
    """What the `_run.html` partial (one run's sections) needs, `payload` from `report_payload`."""
    return {
        "report": payload,
        "models": payload["models"],
        "in_sample": [in_sample_warning(m) for m in result.models if m.in_sample],
        "charts": chart_divs(result, prefix=chart_prefix),
        "fee_bps": result.settings.strategy.fee_rate * 1e4,
        "policy_line": describe_fixed(result),
    }


def render_page(template_name: str, **context: Any) -> str:
    """Render one of the backtest templates (`report.html`, `sweep.html`)."""
    return _TEMPLATES.get_template(template_name).render(**context)


def render_html(result: BacktestResult, payload: dict[str, Any], *, plotly_src: str) -> str:
    """The report page: banners, verdict, tables from `payload`, then the charts."""
    return render_page("report.html", plotly_src=plotly_src, **run_context(result, payload))


def write_report_files(
    reports_dir: Path, run_id: str, payload: dict[str, Any], render: Callable[[str], str]
) -> ReportFiles:
    """Write `<reports_dir>/<run_id>/report.json` and `report.html` (+ the shared plotly asset).

    `render(plotly_src)` returns the HTML page given the relative path of plotly.js.
    """
    run_dir = reports_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    plotly_js = ensure_plotly_asset(reports_dir)
    json_path = run_dir / JSON_NAME
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=False), encoding="utf-8")
    src = Path("..") / ASSETS_DIR / plotly_js.name
    html_path = run_dir / HTML_NAME
    html_path.write_text(render(src.as_posix()), encoding="utf-8")
    logger.info("Wrote %s (%.0f kB) and %s", html_path, html_path.stat().st_size / 1e3, json_path)
    return ReportFiles(run_dir=run_dir, html=html_path, json=json_path, plotly_js=plotly_js)


def write_report(result: BacktestResult, reports_dir: Path) -> ReportFiles:
    """Write `<reports_dir>/<run_id>/report.json` and `report.html` (+ the shared plotly asset)."""
    payload = report_payload(result)
    return write_report_files(
        reports_dir,
        result.run_id,
        payload,
        lambda src: render_html(result, payload, plotly_src=src),
    )


# ----------------------------------------------------------------------------- run record
def headline_metrics(model: ModelBacktest) -> dict[str, Any]:
    """The few numbers the dashboard lists per model of a run."""
    out: dict[str, Any] = {key: getattr(model.trading, key) for key in _HEADLINE_KEYS}
    out.update(
        accuracy=model.classification.accuracy,
        roc_auc=model.classification.roc_auc,
        n_predictions=model.classification.n,
        p_value=model.significance.p_value,
        best_baseline=model.significance.baseline,
        best_baseline_accuracy=model.significance.baseline_accuracy,
        break_even_bps=model.fee_sensitivity.break_even_bps,
        in_sample=model.in_sample,
    )
    return dict(json_ready(out))


def stored_path(path: Path, configured: Path) -> str:
    """Relative to the configured reports directory when inside it (`--out` elsewhere: absolute)."""
    try:
        return path.resolve().relative_to(configured.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def record_run(result: BacktestResult, files: ReportFiles, settings: Settings) -> str:
    """Store the run (id, time, config hash, period, headline metrics, report paths).

    Raises:
        StorageError: the database cannot be opened, migrated or written.
    """
    configured = settings.backtest.reports_dir
    run = NewBacktestRun(
        run_id=result.run_id,
        created_ms=to_epoch_ms(result.created_at),
        config_hash=result.config_hash,
        symbol=result.symbol,
        timeframe=result.timeframe,
        models=tuple(m.algorithm for m in result.models),
        period_start_ms=to_epoch_ms(result.period_start.to_pydatetime()),
        period_end_ms=to_epoch_ms(result.period_end.to_pydatetime()),
        metrics={m.algorithm: headline_metrics(m) for m in result.models},
        model_ids={m.algorithm: m.model_id for m in result.models if m.model_id},
        report_path=stored_path(files.html, configured),
        json_path=stored_path(files.json, configured),
    )
    store_run(run, settings)
    return result.run_id


def store_run(run: NewBacktestRun, settings: Settings) -> None:
    """Insert one run record into `storage.db_url` (creating or migrating the schema first).

    Raises:
        StorageError: the database cannot be opened, migrated or written.
    """
    engine = make_engine(settings.storage.db_url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        init_db(engine)
        with session_scope(make_session_factory(engine), operation="record the backtest run") as s:
            add_backtest_run(s, run)
    finally:
        engine.dispose()
    logger.info("Recorded backtest run %s in %s", run.run_id, safe_url(settings.storage.db_url))
