"""End to end: `cryptopred serve` in a subprocess, driven by headless Chromium via Playwright."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
import yaml
from plotly.offline import get_plotlyjs_version

from tests.api.conftest import SMALL_ML, api_settings, install_model, seed_database, write_report

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOT = Path("/tmp/dashboard.png")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    config = {
        "data": {"cache_dir": str(tmp_path / "cache")},
        "ml": {**SMALL_ML, "registry_dir": str(tmp_path / "models")},
        "backtest": {"reports_dir": str(tmp_path / "reports")},
        "storage": {"db_url": f"sqlite:///{tmp_path / 'test.db'}"},
        "logging": {"level": "WARNING"},
        **sections,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _wait_until_up(base_url: str, process: subprocess.Popen, timeout_seconds: float = 60) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"cryptopred serve exited with {process.returncode}")
        try:
            if requests.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)  # waiting for a real server process, not a unit test
    raise AssertionError(f"{base_url} did not become healthy in {timeout_seconds} s")


@contextmanager
def serving(tmp_path: Path, registry: Path, **sections: dict[str, Any]) -> Iterator[str]:
    """A real `cryptopred serve` on a free 127.0.0.1 port with a model and a seeded database
    (`sections` are added to its config.yaml); its base URL. Checks its log when it stops."""
    config = _write_config(tmp_path, **sections)
    settings = api_settings(tmp_path)
    manifest = install_model(registry, settings)
    seed_database(settings, manifest.model_id)
    write_report(settings)
    port = _free_port()
    cli = Path(sys.executable).with_name("cryptopred")
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [str(cli), "--config", str(config), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "CRYPTOPRED_API_KEY"},
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base_url, process)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    server_log = (tmp_path / "serve.log").read_text(encoding="utf-8")
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal (exit status -15)
    assert process.returncode in (0, -signal.SIGTERM), server_log[-2000:]
    assert "Traceback" not in server_log and " ERROR " not in server_log, server_log[-2000:]


@pytest.fixture
def server(tmp_path: Path, trained_registry: Path) -> Iterator[str]:
    """A real `cryptopred serve` on a free 127.0.0.1 port with a model and a seeded database."""
    with serving(tmp_path, trained_registry) as base_url:
        yield base_url


def test_dashboard_in_a_real_browser(chromium: Path, server: str) -> None:
    from playwright.sync_api import sync_playwright  # only this slow test needs it

    console_errors: list[str] = []
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))
        page.on("pageerror", lambda error: console_errors.append(str(error)))
        page.on("request", lambda request: requested.append(request.url))
        page.on(
            "response",
            lambda response: (
                response.status >= 400
                and console_errors.append(f"{response.status} {response.url}")
            ),
        )
        page.goto(f"{server}/", wait_until="load")
        # locator waits, not wait_for_function: its polling evals, which the page's CSP forbids
        page.locator(".js-plotly-plot").nth(2).wait_for(timeout=15_000)

        charts = page.eval_on_selector_all(
            ".js-plotly-plot",
            """plots => plots.map(p => ({
                id: p.id,
                traces: p._fullData.length,
                marks: p.querySelectorAll('.point, .js-line').length
            }))""",
        )
        assert {c["id"] for c in charts} == {
            "chart-accuracy",
            "chart-probability",
            "chart-importance",
        }
        assert all(c["traces"] > 0 and c["marks"] > 0 for c in charts), charts  # drawn, not empty
        # the plotly.js bundled with the installed plotly package, served by the app itself
        assert page.evaluate("window.Plotly && Plotly.version") == get_plotlyjs_version()

        page.fill("#f-rsi", "73.5")
        page.click("#indicator-form button[type=submit]")
        page.locator("#prediction-result", has_text="P(up)").wait_for(timeout=10_000)
        result = page.inner_text("#prediction-result")
        assert re.search(r"[▲▼] (UP|DOWN) P\(up\) \d{1,3}\.\d%", result), result
        assert re.search(r"policy from flat: (LONG \d{1,3}%|FLAT|SHORT \d{1,3}%)", result), result
        assert page.url == f"{server}/"  # no full page reload

        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.click("text=HTML report")
        page.wait_for_load_state("load")
        assert page.inner_text("body") == "report"
        assert page.get_attribute("body", "data-scripts") == "ran"  # its CSP allows its script
        browser.close()

    foreign = [url for url in requested if urlparse(url).hostname not in LOCAL_HOSTS]
    assert foreign == []
    assert console_errors == []
    assert SCREENSHOT.stat().st_size > 10_000
