"""A report that can be mailed: plotly.js embedded on request; a copied page without its shared
plotly.js says so instead of showing blank charts."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from backtests.plotly_js import PLOTLY_JS
from backtests.report import write_report
from backtests.run import BacktestResult
from cli.main import app
from tests.backtests.conftest import SMALL_WALK_FORWARD
from tests.backtests.test_cli import CHROMIUM_ARGS, write_config

runner = CliRunner()


def _open_alone(chromium: Path, html: Path, folder: Path) -> dict[str, Any]:
    """Copy `html` alone into the empty `folder`, open it from file:// and describe the page."""
    from playwright.sync_api import sync_playwright

    folder.mkdir()
    alone = folder / "report.html"
    shutil.copyfile(html, alone)
    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith("file://") else foreign.append(r.url))
        page.goto(alone.as_uri(), wait_until="load")
        page.wait_for_timeout(1500)
        state = page.evaluate(
            """() => ({
                plotly: window.Plotly !== undefined,
                charts: Object.fromEntries(
                    Array.from(document.querySelectorAll('div[id^="chart-"]'))
                    .map(d => [d.id, (d.data || []).length])),
                notice: document.getElementById('plotly-missing') ?
                    document.getElementById('plotly-missing').innerText : null,
            })"""
        )
        browser.close()
    return {**state, "errors": errors, "foreign": foreign}


def test_self_contained_report_works_alone_from_an_empty_folder(
    chromium: Path, tmp_path: Path, bt_fixed_result: BacktestResult
) -> None:
    files = write_report(bt_fixed_result, tmp_path / "reports", self_contained=True)
    html = files.html.read_text(encoding="utf-8")
    assert files.plotly_js is None and not (tmp_path / "reports" / "assets").exists()
    assert not re.findall(r"<script\b[^>]*\bsrc=", html)
    assert PLOTLY_JS.read_text(encoding="utf-8") in html
    state = _open_alone(chromium, files.html, tmp_path / "mailed")
    assert state["plotly"] and state["notice"] is None
    charts = state["charts"]
    assert len(charts) >= 10 and charts["chart-price"] > 0 and charts["chart-equity"] > 0, charts
    assert charts["chart-trade_panels"] > 0  # the fixed policy traded
    empty = [name for name, n in charts.items() if n == 0]
    # fixed policy: one candidate, so no PBO histogram (its title says "not computed")
    assert empty in ([], ["chart-pbo"]), charts
    assert not state["errors"] and not state["foreign"], state


def test_default_report_copied_alone_shows_the_missing_plotly_notice(
    chromium: Path, tmp_path: Path, bt_fixed_result: BacktestResult
) -> None:
    files = write_report(bt_fixed_result, tmp_path / "reports")
    assert files.plotly_js is not None and files.plotly_js.is_file()
    assert files.html.stat().st_size < 2_000_000  # without plotly.js: a small page
    state = _open_alone(chromium, files.html, tmp_path / "copied")
    assert not state["plotly"]
    assert state["notice"] is not None and "plotly.js did not load" in state["notice"]
    assert "--self-contained" in state["notice"]
    assert not state["foreign"]


@pytest.mark.parametrize(("flag", "embedded"), [("--self-contained", True), (None, False)])
def test_cli_backtest_self_contained_flag(
    tmp_path: Path, candle_csv: Path, flag: str | None, embedded: bool
) -> None:
    config = write_config(
        tmp_path,
        ml={"walk_forward": SMALL_WALK_FORWARD},
        backtest={"models": ["logreg"]},
    )
    args = ["--config", str(config), "backtest", "--data", str(candle_csv)]
    done = runner.invoke(app, args + ([flag] if flag else []))
    assert done.exit_code == 0, done.stderr
    html = Path(done.stdout.strip().splitlines()[-1]).read_text(encoding="utf-8")
    assert (PLOTLY_JS.read_text(encoding="utf-8") in html) is embedded
    assert bool(re.findall(r"<script\b[^>]*\bsrc=", html)) is not embedded
