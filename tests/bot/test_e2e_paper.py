"""End to end: a 200-candle replay by `cryptopred live`, then `/paper` and the dashboard's
paper panel in headless Chromium, served by `cryptopred serve` on the bot's database."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from ml.registry import load_current_model
from tests.api.test_browser import CHROMIUM_ARGS
from tests.bot.processes import (
    Emulator,
    LiveBot,
    Server,
    prediction_count,
    wait_for,
    write_bot_config,
)
from tests.bot.replay import BTC_FILE, REPLAY_START, SECONDS_PER_CANDLE, paper_vs_backtest

pytestmark = pytest.mark.slow

TARGET_PREDICTIONS = 200
SHOTS = Path(os.environ.get("CRYPTOPRED_SHOTS_DIR", "/tmp"))


def test_paper_panel_after_a_200_candle_replay(
    tmp_path: Path, chromium: Path, replay_registry: Path, served: pd.DataFrame
) -> None:
    from playwright.sync_api import sync_playwright  # only the browser tests need it

    emulator = Emulator(BTC_FILE, REPLAY_START, tmp_path, SECONDS_PER_CANDLE).start()
    config = write_bot_config(tmp_path, base_url=emulator.url, registry=replay_registry)
    bot = LiveBot(config, tmp_path / "bot.log").start()
    server = None
    try:
        db = tmp_path / "bot.db"
        wait_for(lambda: prediction_count(db) >= TARGET_PREDICTIONS, timeout=150, what="200")
        assert bot.terminate() == 0
        artifact = load_current_model(replay_registry, "BTC/USDT", "1h")
        paper_vs_backtest(db, served, artifact)
        server = Server(config, tmp_path / "serve.log").start()
        wait_for(lambda: server.get_json("/health")[0] != 0, timeout=60, what="the API")
        status, body = server.get_json("/paper?symbol=BTC/USDT&timeframe=1h")
        assert status == 200, body
        assert body["n_candles"] >= TARGET_PREDICTIONS
        assert body["trades"] and body["position"] is not None
        assert body["expectation"]["band"]["window_bars"] == 168
        assert body["equity"][0]["equity"] == body["equity"][0]["buy_and_hold"] == 10_000.0
        status, accuracy = server.get_json("/accuracy?symbol=BTC/USDT&timeframe=1h")
        assert status == 200 and accuracy["drift"]["alarm"] == body["expectation"]["alarm"]
        status, live = server.get_json("/dashboard/live?symbol=BTC/USDT&timeframe=1h")
        assert status == 200, live  # the page's refresh carries the paper panel and charts
        assert {"paper", "band"} <= set(live["charts"])
        assert 'id="paper-trades"' in live["panels"]["paper_trades"]
        assert 'id="paper-alarm"' in live["panels"]["paper_summary"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/?symbol=BTC/USDT&timeframe=1h", wait_until="load")
            page.locator("#chart-band.js-plotly-plot").wait_for(timeout=15_000)
            page.locator("#chart-paper.js-plotly-plot").wait_for(timeout=15_000)
            traces = page.eval_on_selector_all(
                "#paper-panel .js-plotly-plot", "plots => plots.map(p => p._fullData.length)"
            )
            assert traces == [2, 5]  # paper + buy & hold; band fill (2), alarm lines, paper
            page.wait_for_timeout(500)  # a resize after the grid reflowed is asynchronous
            widths = page.eval_on_selector_all(
                ".chart .js-plotly-plot",
                "plots => plots.map(p => [p.id, p._fullLayout.width,"
                " p.parentElement.getBoundingClientRect().width])",
            )
            for chart, drawn, slot in widths:  # no chart drawn wider than its slot (clipped)
                assert drawn <= slot + 1, (chart, drawn, slot)
            rows = page.locator("#paper-trades tbody tr").count()
            assert rows == min(20, len(body["trades"]))
            assert page.inner_text("#paper-position") == body["position"]["action"]
            page.locator("#paper-panel").screenshot(path=str(SHOTS / "paper-panel.png"))
            page.screenshot(path=str(SHOTS / "dashboard-paper.png"), full_page=True)
            browser.close()
    finally:
        bot.ensure_stopped()
        if server is not None:
            server.ensure_stopped()
        emulator.stop()
