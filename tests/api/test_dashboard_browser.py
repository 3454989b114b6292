"""The dashboard's honesty and auto-refresh, and /docs offline, in headless Chromium.

A real `cryptopred serve` subprocess (refreshing every second), a real `cryptopred backtest`
subprocess; Playwright drives Debian's Chromium (under CI=true a missing browser fails).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

from api.dashboard import action_thresholds
from core.settings import DecisionPolicy, Settings
from ml.registry import ModelManifest, current_model_id, read_manifest
from tests.api.conftest import SYMBOL, TIMEFRAME, api_settings
from tests.api.test_browser import CHROMIUM_ARGS, LOCAL_HOSTS, serving
from tests.api.test_dashboard import insert_prediction
from tests.factories import make_ohlcv

pytestmark = pytest.mark.slow

REFRESH_SECONDS = 1.0
TRAINING_CANDLES = {"n": 2000, "seed": 11}  # what tests/api/conftest.py trains the model on


@dataclass(frozen=True, slots=True)
class Served:
    url: str
    config: Path
    settings: Settings
    manifest: ModelManifest


@pytest.fixture
def served_app(tmp_path: Path, trained_registry: Path) -> Iterator[Served]:
    """`cryptopred serve` on a free port: a promoted model, a seeded database, 1 s refresh."""
    api = {"dashboard_refresh_seconds": REFRESH_SECONDS}
    with serving(tmp_path, trained_registry, api=api) as url:
        settings = api_settings(tmp_path)
        model_id = current_model_id(settings.ml.registry_dir, SYMBOL, TIMEFRAME)
        assert model_id is not None
        manifest = read_manifest(settings.ml.registry_dir, model_id)
        yield Served(url, tmp_path / "config.yaml", settings, manifest)


@pytest.fixture
def browser_page(chromium: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A Chromium page, the URLs it requested and the errors it logged (console, HTTP >= 400)."""
    from playwright.sync_api import sync_playwright  # only the slow browser tests need it

    errors: list[str] = []
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requested.append(request.url))
        page.on(
            "response",
            lambda response: (
                response.status >= 400 and errors.append(f"{response.status} {response.url}")
            ),
        )
        yield page, requested, errors
        browser.close()


def _foreign(requested: list[str]) -> list[str]:
    return [url for url in requested if urlparse(url).hostname not in LOCAL_HOSTS]


def test_dashboard_flags_in_sample_after_a_model_id_backtest(
    served_app: Served, browser_page: tuple[Any, list[str], list[str]], tmp_path: Path
) -> None:
    page, requested, errors = browser_page
    page.goto(f"{served_app.url}/", wait_until="load")
    assert page.locator("[data-flag=in-sample]").count() == 0  # the seeded run is out of sample
    assert page.inner_text("#metrics-title ~ .metrics caption >> nth=0") == (
        "Classification (out of sample)"
    )

    candles = make_ohlcv(TRAINING_CANDLES["n"], seed=TRAINING_CANDLES["seed"]).reset_index()
    candles["timestamp"] = candles["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    data = tmp_path / "candles.csv"
    candles.to_csv(data, index=False)
    done = subprocess.run(
        [
            *(
                str(Path(sys.executable).with_name("cryptopred")),
                "--config",
                str(served_app.config),
            ),
            *("backtest", "--data", str(data), "--model-id", served_app.manifest.model_id),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "IN-SAMPLE" in done.stdout

    page.reload(wait_until="load")
    caption = page.inner_text("#metrics-title ~ .metrics caption >> nth=0")
    assert "out of sample" in caption and "backtest not" in caption, caption
    header = page.locator("#metrics-title ~ .metrics thead [data-flag=in-sample]")
    assert header.is_visible() and header.inner_text() == "IN-SAMPLE"
    note = page.locator("#metrics-title ~ .metrics caption [data-flag=in-sample][role=note]")
    assert note.is_visible()
    assert "overstate" in page.inner_text("#metrics-title ~ .metrics table >> nth=1")
    newest_run = page.locator("#backtests-title ~ .scroll tbody tr >> nth=0")
    assert newest_run.locator("[data-flag=in-sample]").is_visible()
    assert _foreign(requested) == [] and errors == []


def test_docs_render_offline(
    served_app: Served, browser_page: tuple[Any, list[str], list[str]]
) -> None:
    page, requested, errors = browser_page
    blocked: list[str] = []

    def offline(route: Any) -> None:
        if urlparse(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", offline)  # as if there were no internet
    page.goto(f"{served_app.url}/docs", wait_until="load")
    page.locator(".swagger-ui .info .title").wait_for(timeout=15_000)
    assert "crypto" in page.inner_text(".swagger-ui .info .title").lower()
    page.locator(".swagger-ui .opblock").first.wait_for(timeout=15_000)
    paths = page.locator(".swagger-ui .opblock .opblock-summary-path").all_inner_texts()
    assert "/predict" in paths and "/health" in paths, paths
    assert blocked == [] and _foreign(requested) == []
    assert errors == []


def test_signal_card_shows_action_and_direction_with_their_thresholds(
    served_app: Served, browser_page: tuple[Any, list[str], list[str]]
) -> None:
    page, _requested, errors = browser_page
    info = requests.get(f"{served_app.url}/model/info", timeout=10).json()
    newest = requests.get(f"{served_app.url}/predictions", params={"limit": 1}, timeout=10).json()
    logged = newest["items"][0]
    page.goto(f"{served_app.url}/", wait_until="load")
    card = page.locator("article.signal")
    assert card.count() == 1

    direction = card.locator(".direction").inner_text()
    assert re.fullmatch(r"[▲▼] (UP|DOWN)", direction), direction
    proba = float(re.search(r"P\(up\) (\d+\.\d)%", card.inner_text()).group(1)) / 100
    threshold_text = card.locator("[data-threshold=direction]").inner_text()
    assert threshold_text == f"UP at P(up) ≥ {info['threshold']:.2f}"
    assert direction.endswith("UP") == (proba >= info["threshold"])
    assert direction.endswith(logged["direction"])

    action = card.locator(".action").inner_text()
    assert action.split()[0] == logged["action"] and logged["action"] in {"LONG", "FLAT", "SHORT"}
    rule = action_thresholds(DecisionPolicy(**info["decision"]["rule"]))
    assert card.locator("[data-threshold=action]").inner_text().startswith(rule)
    assert rule.startswith("LONG at P(up) ≥ ") or rule.startswith("stays FLAT")
    assert errors == []


def test_dashboard_refreshes_itself_without_reloading(
    served_app: Served, browser_page: tuple[Any, list[str], list[str]]
) -> None:
    page, requested, errors = browser_page
    page.goto(f"{served_app.url}/", wait_until="load")
    page.locator("#chart-probability.js-plotly-plot").wait_for(timeout=15_000)
    points_before = page.evaluate(
        "document.getElementById('chart-probability').data.reduce((n, t) => n + t.x.length, 0)"
    )
    # marks that vanish if the page reloads or the chart element is created anew
    page.evaluate("window.notReloaded = true")
    page.evaluate("document.getElementById('chart-probability').dataset.marker = 'kept'")

    open_ms = insert_prediction(served_app.settings, served_app.manifest.model_id, proba_up=0.8123)
    stamp = f"{datetime.fromtimestamp(open_ms / 1000, UTC):%Y-%m-%d %H:%M}"
    page.locator("[data-panel=recent] td", has_text=stamp).wait_for(
        timeout=10 * REFRESH_SECONDS * 1000
    )
    page.locator("article.signal", has_text="81.2%").wait_for(timeout=5_000)

    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate("document.getElementById('chart-probability').dataset.marker") == "kept"
    points_after = page.evaluate(
        "document.getElementById('chart-probability').data.reduce((n, t) => n + t.x.length, 0)"
    )
    assert points_after == points_before + 1
    assert re.fullmatch(
        r"updated \d\d:\d\d:\d\d UTC, every 1 s", page.inner_text("#refresh-status")
    ), page.inner_text("#refresh-status")
    assert sum("/dashboard/live" in url for url in requested) >= 1
    assert [url for url in requested if urlparse(url).path == "/"] == [f"{served_app.url}/"]

    # a hidden tab fetches nothing; showing it again refreshes at once
    set_hidden = """hidden => {
        Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    page.evaluate(set_hidden, True)
    page.wait_for_timeout(500)  # a fetch already under way may still finish
    fetched = len(requested)
    page.wait_for_timeout(4 * REFRESH_SECONDS * 1000)
    assert requested[fetched:] == []
    page.evaluate(set_hidden, False)
    page.wait_for_timeout(500)
    assert any("/dashboard/live" in url for url in requested[fetched:])
    assert _foreign(requested) == [] and errors == []
