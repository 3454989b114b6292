"""Read-only endpoints: health, features, model info, predictions, accuracy, backtests, reports."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ml.registry import ModelManifest
from storage.db import make_engine, make_session_factory, session_scope
from storage.repository import NewBacktestRun, add_backtest_run, resolved_predictions
from tests.api.conftest import RUN_ID, api_settings, install_model, seed_database


# ------------------------------------------------------------------------------ /health
def test_health_ok_with_model_db_and_fresh_tick(
    client: TestClient, manifest: ModelManifest
) -> None:
    response = client.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["model_id"] == manifest.model_id and body["model_age_seconds"] >= 0
    assert body["database"] == "ok" and body["bot"] == "running"
    assert 0 <= body["last_tick_age_seconds"] < 60


def test_health_is_503_without_a_model_and_the_bot_is_no_reason(tmp_path) -> None:
    settings = api_settings(tmp_path)
    with TestClient(create_app(settings)) as fresh:
        response = fresh.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["bot"] == "absent"
    assert len(body["reasons"]) == 1 and "no current model for" in body["reasons"][0]
    assert "cryptopred live" in body["bot_detail"]


def test_health_is_200_for_an_api_only_deployment(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path)
    install_model(trained_registry, settings)  # a model, an empty database, no bot ever
    with TestClient(create_app(settings)) as app_client:
        response = app_client.get("/health")
    body = response.json()
    assert response.status_code == 200, body
    assert (body["status"], body["reasons"], body["bot"]) == ("ok", [], "absent")
    assert body["last_tick_at"] is None


def test_health_is_503_when_the_database_is_unreachable(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path)
    install_model(trained_registry, settings)
    with TestClient(create_app(settings)) as app_client:
        app_client.app.state.engine.dispose()
        (tmp_path / "test.db").unlink()
        (tmp_path / "test.db").mkdir()  # a directory where the SQLite file should be
        response = app_client.get("/health")
    body = response.json()
    assert response.status_code == 503, body
    assert body["database"] == "unreachable" and body["model_id"] is not None


def test_health_reports_a_stale_bot(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path, api={"max_tick_age": "1h"})
    manifest = install_model(trained_registry, settings)
    # 90 min: older than max_tick_age, not yet two 1h ticks (that would be "lost")
    seed_database(settings, manifest.model_id, now_ms=int(time.time() * 1000) - 5_400_000)
    with TestClient(create_app(settings)) as app_client:
        response = app_client.get("/health")
    body = response.json()
    assert response.status_code == 200, body  # the API itself is fine
    assert body["bot"] == "stale" and body["reasons"] == []
    assert "bot heartbeat is stale" in body["bot_detail"]


# ------------------------------------------------------------------------------ models
def test_features_lists_every_model_feature(client: TestClient, manifest: ModelManifest) -> None:
    response = client.get("/features")
    assert response.status_code == 200
    features = response.json()["features"]
    assert [f["name"] for f in features] == manifest.feature_names
    rsi = next(f for f in features if f["name"] == "rsi")
    assert rsi["group"] == "momentum" and "RSI" in rsi["description"]
    assert [rsi["train_min"], rsi["train_max"]] == list(manifest.feature_ranges["rsi"])


def test_model_info_has_manifest_and_backtest(client: TestClient, manifest: ModelManifest) -> None:
    response = client.get("/model/info")
    assert response.status_code == 200
    body = response.json()
    assert body["model_id"] == manifest.model_id and body["algorithm"] == "logreg"
    assert manifest.walk_forward is not None
    assert body["walk_forward"]["metrics"]["accuracy"] == manifest.walk_forward.metrics["accuracy"]
    assert set(body["walk_forward"]["baselines"]) >= {"always_up", "persistence"}
    assert body["feature_importance"] == manifest.feature_importance
    assert body["library_versions"]["scikit-learn"]
    assert body["inference"] == "compiled"
    backtest = body["backtest"]
    assert backtest["id"] == RUN_ID
    assert backtest["classification"]["accuracy"] == 0.512
    assert backtest["trading"]["total_return"] == 0.042
    assert manifest.decision is not None
    decision = body["decision"]  # `train` validated the policy the API and the bot trade
    assert decision["source"] == "manifest"
    assert decision["rule"] == manifest.decision.policy.model_dump(mode="json")
    assert decision["validated"] == manifest.decision.model_dump(mode="json")
    assert backtest["trading"]["break_even_bps"] is None


# ------------------------------------------------------------------------------ /predictions
def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_predictions_paginate_without_overlap(client: TestClient) -> None:
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 40, **({"cursor": cursor} if cursor else {})}
        page = client.get("/predictions", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 150 and len(set(seen)) == 150
    first = client.get("/predictions", params={"limit": 1}).json()["items"][0]
    assert first["id"] == max(seen) and first["is_correct"] is None  # newest: not resolved yet


def test_predictions_filters_and_since(client: TestClient) -> None:
    newest = client.get("/predictions", params={"limit": 1}).json()["items"][0]["candle_open"]
    recent = client.get("/predictions", params={"since": newest}).json()["items"]
    assert len(recent) == 1
    other = client.get("/predictions", params={"symbol": "ETH/USDT"}).json()
    assert other == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"cursor": _cursor("9223372036854775808:1")}, "cursor"),  # > int64: was a 500
        ({"cursor": _cursor("1:9223372036854775808")}, "cursor"),
        ({"cursor": _cursor("-1:1")}, "cursor"),
        ({"cursor": _cursor("01:1")}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"since": "yesterday"}, "since"),
    ],
)
def test_predictions_bad_parameters_are_422(client: TestClient, params: dict, field: str) -> None:
    response = client.get("/predictions", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]
    assert response.json()["detail"][0]["msg"].startswith(f"query.{field} ")


def test_predictions_cursor_at_the_int64_limit_is_a_page(client: TestClient) -> None:
    response = client.get("/predictions", params={"cursor": _cursor(f"{2**63 - 1}:{2**63 - 1}")})
    assert response.status_code == 200
    assert len(response.json()["items"]) == 100


# ------------------------------------------------------------------------------ /accuracy
def test_accuracy_matches_the_stored_outcomes(
    client: TestClient, manifest: ModelManifest, served
) -> None:
    settings = served[0]
    engine = make_engine(settings.storage.db_url)
    with session_scope(make_session_factory(engine), read_only=True) as session:
        stored = resolved_predictions(session, symbol="BTC/USDT", timeframe="1h")
    engine.dispose()
    correct = np.array([p.is_correct for p in stored], dtype=float)
    response = client.get("/accuracy", params={"window": 20})
    assert response.status_code == 200
    body = response.json()
    assert body["n"] == len(stored) == 148
    assert body["accuracy"] == pytest.approx(correct.mean())
    assert body["model_id"] == manifest.model_id
    assert body["series"][-1]["rolling_accuracy"] == pytest.approx(correct[-20:].mean())
    assert body["series"][-1]["n_in_window"] == 20
    assert len(body["series"]) == len(stored) - 10 + 1  # points need 10 resolved predictions
    expected = body["expected"]
    assert expected["walk_forward_accuracy"] == manifest.walk_forward.metrics["accuracy"]
    assert expected["backtest_id"] == RUN_ID and expected["backtest_accuracy"] == 0.512


def test_accuracy_unknown_model_or_pair_is_404(client: TestClient) -> None:
    assert client.get("/accuracy", params={"model_id": "nope-1h"}).status_code == 404
    unknown = client.get("/accuracy", params={"symbol": "XRP/BTC", "timeframe": "4h"})
    assert unknown.status_code == 404 and "XRP/BTC 4h" in unknown.json()["detail"]
    assert client.get("/accuracy", params={"window": 0}).status_code == 422


# ------------------------------------------------------------------------------ backtests
def test_backtests_list_and_detail(client: TestClient, manifest: ModelManifest) -> None:
    runs = client.get("/backtests").json()["items"]
    assert [run["id"] for run in runs] == [RUN_ID]
    assert runs[0]["report_url"] == f"/reports/{RUN_ID}/report.html"
    detail = client.get(f"/backtests/{RUN_ID}")
    assert detail.status_code == 200
    assert detail.json()["metrics"]["logreg"]["sharpe"] == 0.71
    assert detail.json()["model_ids"] == {"logreg": manifest.model_id}
    missing = client.get("/backtests/20990101T000000.000Z-ffffffff")
    assert missing.status_code == 404 and "GET /backtests" in missing.json()["detail"]


def test_backtest_report_redirects_and_serves_files(client: TestClient) -> None:
    redirect = client.get(f"/backtests/{RUN_ID}/report", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"/reports/{RUN_ID}/report.html"
    page = client.get(redirect.headers["location"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    asset = client.get("/reports/assets/report.css")  # the report's relative ../assets link
    assert asset.status_code == 200 and asset.text == "body{}"


@pytest.mark.parametrize(
    "path",
    [
        "/reports/../config.yaml",
        "/reports/%2e%2e/%2e%2e/etc/passwd",
        "/reports/..%2f..%2fetc%2fpasswd",
        f"/reports/{RUN_ID}/secret.txt",
        "/reports//etc/passwd",
        "/reports/%00",
    ],
)
def test_report_files_refuse_traversal_and_other_types(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "not served" not in response.text and "root:" not in response.text


def test_report_path_outside_the_reports_dir_is_not_linked(client: TestClient, served) -> None:
    settings = served[0]
    engine = make_engine(settings.storage.db_url)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    with session_scope(make_session_factory(engine)) as session:
        add_backtest_run(
            session,
            NewBacktestRun(
                run_id="evil-run",
                created_ms=now_ms,
                config_hash="x",
                symbol="BTC/USDT",
                timeframe="1h",
                models=("logreg",),
                period_start_ms=0,
                period_end_ms=now_ms,
                metrics={},
                report_path="../../../../etc/passwd",
            ),
        )
    engine.dispose()
    assert client.get("/backtests/evil-run").json()["report_url"] is None
    assert client.get("/backtests/evil-run/report", follow_redirects=False).status_code == 404
