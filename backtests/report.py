"""Write one backtest run's report: `report.json`, `report.html` and the shared plotly.js asset."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backtests.plotly_js import PlotlyScript, ensure_plotly_asset, plotly_script
from backtests.report_html import render_html
from backtests.report_json import HTML_NAME, JSON_NAME, report_payload
from backtests.run import BacktestResult

__all__ = ["ReportFiles", "ensure_plotly_asset", "write_report", "write_report_files"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where one run's report was written (`plotly_js` None: embedded in the page)."""

    run_dir: Path
    html: Path
    json: Path
    plotly_js: Path | None


def write_report_files(
    reports_dir: Path,
    run_id: str,
    payload: dict[str, Any],
    render: Callable[[PlotlyScript], str],
    *,
    self_contained: bool = False,
) -> ReportFiles:
    """Write `<reports_dir>/<run_id>/report.json` and `report.html`.

    `render(plotly)` returns the HTML page given how it loads plotly.js: embedded when
    `self_contained` (one file that works alone), else linked to the shared copy in
    `<reports_dir>/assets/` (copied there first if needed).
    """
    run_dir = reports_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    json_path = run_dir / JSON_NAME
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=False), encoding="utf-8")
    html_path = run_dir / HTML_NAME
    plotly = plotly_script(html_path, reports_dir, self_contained=self_contained)
    html_path.write_text(render(plotly), encoding="utf-8")
    logger.info("Wrote %s (%.0f kB) and %s", html_path, html_path.stat().st_size / 1e3, json_path)
    asset = None if plotly.src is None else (run_dir / plotly.src).resolve()
    return ReportFiles(run_dir=run_dir, html=html_path, json=json_path, plotly_js=asset)


def write_report(
    result: BacktestResult, reports_dir: Path, *, self_contained: bool = False
) -> ReportFiles:
    """Write `<reports_dir>/<run_id>/report.json` and `report.html` (plotly.js: see
    `write_report_files`)."""
    payload = report_payload(result)
    return write_report_files(
        reports_dir,
        result.run_id,
        payload,
        lambda plotly: render_html(result, payload, plotly=plotly),
        self_contained=self_contained,
    )
