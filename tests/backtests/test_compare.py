"""`cryptopred report compare`: recorded runs side by side, from the stored records and JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backtests.curves import MAX_CURVE_POINTS
from backtests.report import write_report
from backtests.report_json import report_payload
from backtests.run import BacktestResult
from backtests.run_record import record_run
from cli.main import app
from core.settings import Settings, load_settings
from tests.backtests.test_cli import CHROMIUM_ARGS, write_config

runner = CliRunner()


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory,
    bt_result: BacktestResult,
    bt_fixed_result: BacktestResult,
) -> tuple[Path, list[BacktestResult]]:
    """Both small backtests (flat-ish auto policy, trading fixed policy) written and recorded."""
    config = write_config(tmp_path_factory.mktemp("compare"))
    settings: Settings = load_settings(config)
    for result in (bt_result, bt_fixed_result):
        record_run(result, write_report(result, settings.backtest.reports_dir), settings)
    return config, [bt_result, bt_fixed_result]


def _compare(config: Path, *args: str) -> tuple[int, str, str]:
    done = runner.invoke(app, ["--config", str(config), "report", "compare", *args])
    return done.exit_code, done.stdout, done.stderr


def test_equity_payload_samples_the_result_curves(bt_fixed_result: BacktestResult) -> None:
    equity = report_payload(bt_fixed_result)["equity"]
    decision = bt_fixed_result.selection.run.equity
    hold = bt_fixed_result.buy_and_hold_equity
    assert len(equity["time"]) == len(equity["decision"]) == len(equity["buy_and_hold"])
    assert len(equity["time"]) <= MAX_CURVE_POINTS + 1
    assert equity["time"][0] == hold.index[0].isoformat()
    assert equity["time"][-1] == hold.index[-1].isoformat()
    assert equity["decision"][-1] == pytest.approx(decision.iloc[-1], rel=1e-5)
    assert equity["buy_and_hold"][-1] == pytest.approx(hold.iloc[-1], rel=1e-5)
    step = equity["step_candles"]
    assert equity["decision"][1] == pytest.approx(decision.iloc[step], rel=1e-5)
    (name,) = equity["models"]
    model_equity = bt_fixed_result.models[0].run.equity
    assert equity["models"][name][-1] == pytest.approx(model_equity.iloc[-1], rel=1e-5)


def test_report_compare_renders_both_runs_metrics_and_curves(
    recorded: tuple[Path, list[BacktestResult]],
) -> None:
    config, results = recorded
    code, out, err = _compare(config, *(r.run_id for r in results))
    assert code == 0, err
    page = Path(out.strip().splitlines()[-1])
    html = page.read_text(encoding="utf-8")
    for result in results:
        assert result.run_id in html
        net = f"{result.selection.trading.total_return:+.2%}"
        # the headline net return of each run, marked against buy-and-hold (never colour alone)
        assert re.search(rf">{re.escape(net)} [▲▼]</td>", html), net
    plot = re.search(r"Plotly\.newPlot\(\s*\"chart-compare\",\s*(\[.*?\]),\s*\{", html, re.S)
    assert plot is not None
    traces = json.loads(plot.group(1))
    assert len(traces) == 3  # two runs + one buy-and-hold (same market and period)
    src = re.findall(r"<script\b[^>]*src=\"([^\"]+)\"", html)
    assert len(src) == 1 and (page.parent / src[0]).resolve().is_file()


def test_report_compare_unknown_run_is_one_error_line_exit_2(
    recorded: tuple[Path, list[BacktestResult]],
) -> None:
    config, results = recorded
    code, out, err = _compare(config, results[0].run_id, "no-such-run" + "x" * 500)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown backtest run 'no-such-run")
    assert len(lines[0]) < 400  # the id is echoed bounded
    assert results[1].run_id in lines[0]  # names the runs that exist
    assert out == ""


@pytest.mark.parametrize("ids", [["one"], ["a", "a"]])
def test_report_compare_needs_two_distinct_runs(
    recorded: tuple[Path, list[BacktestResult]], ids: list[str]
) -> None:
    code, _, err = _compare(recorded[0], *ids)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_compare_page_renders_two_runs_in_chromium(
    chromium: Path, recorded: tuple[Path, list[BacktestResult]]
) -> None:
    from playwright.sync_api import sync_playwright

    config, results = recorded
    code, out, err = _compare(config, *(r.run_id for r in results))
    assert code == 0, err
    page_path = Path(out.strip().splitlines()[-1])
    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith("file://") else foreign.append(r.url))
        page.goto(page_path.as_uri())
        page.wait_for_function("() => window.Plotly !== undefined")
        page.locator("#chart-compare .main-svg").first.wait_for(timeout=15_000)
        points = page.evaluate("document.getElementById('chart-compare').data.map(t => t.y.length)")
        columns = page.locator("#compare-table tr").first.locator("th").count()
        notice = page.locator("#plotly-missing").count()
        browser.close()
    assert not errors and not foreign, (errors, foreign)
    assert len(points) == 3 and all(n > 10 for n in points), points
    assert columns == 3  # the metric names + one column per run
    assert notice == 0  # plotly.js loaded: the missing-asset notice was removed
