"""The dashboard page and the offline Plotly bundle (TestClient; the browser test is separate)."""

from __future__ import annotations

import gzip
import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.pages import PLOTLY_JS
from data.cache import cache_path, write_cache
from ml.features import build_features
from ml.predict import feature_settings_of
from ml.registry import load_model
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
