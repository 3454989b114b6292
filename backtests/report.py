"""Write one backtest run's report: `report.json`, `report.html` and the shared plotly.js asset."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly
from plotly.offline import get_plotlyjs_version

from backtests.report_html import render_html
from backtests.report_json import HTML_NAME, JSON_NAME, report_payload
from backtests.run import BacktestResult

logger = logging.getLogger(__name__)

ASSETS_DIR = "assets"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where one run's report was written."""

    run_dir: Path
    html: Path
    json: Path
    plotly_js: Path


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
