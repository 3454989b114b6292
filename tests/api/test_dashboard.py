"""The dashboard page and the offline Plotly bundle (TestClient; the browser test is separate)."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.pages import PLOTLY_JS
from data.cache import cache_path, write_cache
from ml.features import build_features
from ml.predict import feature_settings_of
from ml.registry import load_model
from storage.db import make_engine, make_session_factory, session_scope
from storage.repository import NewPrediction, insert_predictions, list_predictions
from tests.api.conftest import api_settings
from tests.factories import make_ohlcv


def _external_urls(html: str) -> list[str]:
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    return [url for url in urls if not url.startswith(("/", "#", "data:")) and "://" in url]


def test_dashboard_shows_every_section(client: TestClient, manifest) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.text
    for heading in ("Latest signal per market", "Live accuracy", "Try the model", "Model",
                    "Recent predictions", "Backtest runs"):  # fmt: skip
        assert f">{heading}</h2>" in html
    for chart in ("chart-accuracy", "chart-probability", "chart-importance"):
        assert f'id="{chart}"' in html
    assert '<script src="/static/plotly.min.js"></script>' in html
    assert _external_urls(html) == []
    assert "cdn." not in html
    assert manifest.model_id in html
    assert 'href="/backtests/20240501T000000.000Z-1a2b3c4d/report"' in html
    assert "148 resolved predictions" in html


def test_dashboard_form_has_a_labelled_input_per_feature(client: TestClient, manifest) -> None:
    html = client.get("/").text
    for name in manifest.feature_names:
        assert f'<label for="f-{name}"' in html
        assert re.search(rf'<input id="f-{name}" name="{name}" data-feature type="number"', html)
    assert "midpoints of the training ranges" in html
    low, high = manifest.feature_ranges["rsi"]
    assert f'value="{round((low + high) / 2, 6)}"' in html


def test_dashboard_prefills_from_the_candle_cache(served) -> None:
    settings, manifest = served
    candles = make_ohlcv(700, start="2024-03-01", seed=8)
    write_cache(candles, cache_path(settings.data.cache_dir, "binance", "BTC/USDT", "1h"))
    artifact = load_model(settings.ml.registry_dir, manifest.model_id)
    expected = build_features(candles, feature_settings_of(artifact)).iloc[-1]
    with TestClient(create_app(settings)) as app_client:
        html = app_client.get("/").text
    assert "features of the newest cached candle (2024-03-30 03:00 UTC)" in html
    assert f'value="{round(float(expected["rsi"]), 6)}"' in html


def test_dashboard_without_a_model_says_how_to_train(tmp_path) -> None:
    with TestClient(create_app(api_settings(tmp_path))) as fresh:
        response = fresh.get("/")
        unknown = fresh.get("/", params={"symbol": "FOO/BAR"})
    assert response.status_code == 200
    assert "No model yet for BTC/USDT 1h" in response.text
    assert "cryptopred train --symbol BTC/USDT --timeframe 1h" in response.text
    assert "js-plotly-plot" not in response.text and "Plotly.newPlot" not in response.text
    assert unknown.status_code == 404


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_plotly_bundle_comes_from_the_installed_package(client: TestClient, encoding) -> None:
    response = client.get("/static/plotly.min.js", headers={"Accept-Encoding": encoding})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert response.content == PLOTLY_JS.read_bytes()  # httpx decodes gzip transparently
    if encoding == "gzip":
        assert response.headers["content-encoding"] == "gzip"
        assert int(response.headers["content-length"]) < len(response.content) / 2


def test_plotly_gzip_is_valid(client: TestClient) -> None:
    with client.stream("GET", "/static/plotly.min.js", headers={"Accept-Encoding": "gzip"}) as raw:
        packed = b"".join(raw.iter_raw())
    assert gzip.decompress(packed) == PLOTLY_JS.read_bytes()


def test_static_assets_are_served(client: TestClient) -> None:
    assert "indicator-form" in client.get("/static/dashboard.js").text
    assert client.get("/static/dashboard.css").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


def insert_prediction(settings, model_id: str, *, proba_up: float) -> int:
    """One bot-like prediction for the candle after the newest logged one; its open time."""
    engine = make_engine(settings.storage.db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        newest = list_predictions(session, symbol="BTC/USDT", timeframe="1h", limit=1).items[0]
        open_ms = newest.candle_open_ms + 3_600_000
        insert_predictions(
            session,
            [
                NewPrediction(
                    exchange="binance",
                    symbol="BTC/USDT",
                    timeframe="1h",
                    candle_open_ms=open_ms,
                    target_close_ms=open_ms + 2 * 3_600_000,
                    horizon_bars=1,
                    proba_up=proba_up,
                    direction="UP" if proba_up >= 0.5 else "DOWN",
                    signal=1,
                    size=0.5,
                    threshold=0.5,
                    model_id=model_id,
                    created_ms=open_ms + 3_605_000,
                    latency_ms=5.0,
                )
            ],
        )
    engine.dispose()
    return open_ms


def test_dashboard_live_renders_the_pages_panels_and_charts(client: TestClient, manifest) -> None:
    page = client.get("/").text
    live = client.get("/dashboard/live", params={"symbol": "BTC/USDT", "timeframe": "1h"})
    assert live.status_code == 200
    assert live.headers["cache-control"] == "no-store"
    body = live.json()
    assert set(body["panels"]) == {"signals", "accuracy", "recent", "paper_summary", "paper_trades"}
    for name, html in body["panels"].items():
        # the page embeds the very markup the refresh returns (one template for both)
        assert f'data-panel="{name}">{html}<' in page
    assert "148 resolved predictions" in body["panels"]["accuracy"]
    assert set(body["charts"]) == {"accuracy", "probability"}
    for figure in body["charts"].values():
        assert figure["data"] and figure["layout"]["title"]
        assert figure["config"] == {"displaylogo": False, "responsive": True}
    assert 'data-refresh-seconds="30.0"' in page


def test_dashboard_live_shows_a_new_prediction(served) -> None:
    settings, manifest = served
    with TestClient(create_app(settings)) as app_client:
        before = app_client.get("/dashboard/live").json()
        open_ms = insert_prediction(settings, manifest.model_id, proba_up=0.8123)
        after = app_client.get("/dashboard/live").json()
    stamp = f"{datetime.fromtimestamp(open_ms / 1000, UTC):%Y-%m-%d %H:%M}"
    assert stamp not in before["panels"]["recent"]
    assert f"<td>{stamp}</td>" in after["panels"]["recent"]
    assert "81.2%" in after["panels"]["signals"] and "LONG" in after["panels"]["signals"]
    points = [len(f["x"]) for f in after["charts"]["probability"]["data"]]
    assert sum(points) == sum(len(f["x"]) for f in before["charts"]["probability"]["data"]) + 1


def test_dashboard_live_unknown_pair_is_404(client: TestClient) -> None:
    response = client.get("/dashboard/live", params={"symbol": "FOO/BAR", "timeframe": "1h"})
    assert response.status_code == 404
