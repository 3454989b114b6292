"""Guards: body size, rate limit, API keys, promotion, CORS, no tracebacks in responses."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.limits import parse_rate_limit
from core.errors import StorageError
from core.settings import ApiSettings, Settings
from ml.registry import ModelManifest, current_model_id
from storage.db import make_engine, make_session_factory, session_scope
from storage.repository import list_model_events
from tests.api.conftest import api_settings, features_of, install_model

KEY = "s3cret-key-for-tests"


def _with_key(settings: Settings, key: str | None) -> Settings:
    secrets = settings.secrets.model_validate({"api_key": key} if key else {})
    return settings.model_copy(update={"secrets": secrets})


def _clone_model(settings: Settings, manifest: ModelManifest, new_id: str) -> None:
    root = settings.ml.registry_dir
    shutil.copytree(root / manifest.model_id, root / new_id)
    path = root / new_id / "manifest.json"
    payload = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**payload, "model_id": new_id}), encoding="utf-8")


# ------------------------------------------------------------------------------ body size
def test_oversized_body_is_413(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path, api={"max_body_bytes": 2048})
    manifest = install_model(trained_registry, settings)
    body = json.dumps({"rows": [features_of(manifest)] * 5}).encode()
    assert len(body) > 2048
    with TestClient(create_app(settings)) as small:
        declared = small.post(  # /predict/batch has its own limit (test_batch_limits.py)
            "/predict", content=body, headers={"Content-Type": "application/json"}
        )
        streamed = small.post(
            "/predict",
            content=iter([body[:1500], body[1500:]]),  # chunked: no Content-Length
            headers={"Content-Type": "application/json"},
        )
        fine = small.post("/predict", json={"features": features_of(manifest)})
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "api.max_body_bytes=2048" in response.json()["detail"]
    assert fine.status_code == 200


# ------------------------------------------------------------------------------ rate limit
def test_rate_limit_is_per_client_with_retry_after(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path, api={"rate_limit": "3/minute"})
    install_model(trained_registry, settings)
    app = create_app(settings)
    with TestClient(app) as limited:
        statuses = [limited.get("/features").status_code for _ in range(3)]
        refused = limited.get("/model/info")  # the limit spans every route
        other = TestClient(app, client=("10.0.0.2", 50000)).get("/features")
    assert other.status_code == 200  # another client has its own budget
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "3 per 1 minute" in refused.json()["detail"]


def test_rate_limit_can_be_switched_off(served) -> None:
    settings, default_rate = served[0], ApiSettings().rate_limit
    assert settings.api.rate_limit is None and default_rate is not None
    # more requests than the default budget: an app that ignored `rate_limit: null` and fell
    # back to the default would refuse the last one
    budget = parse_rate_limit(default_rate).amount
    with TestClient(create_app(settings)) as unlimited:
        statuses = {unlimited.get("/features").status_code for _ in range(budget + 1)}
    assert statuses == {200}


# ------------------------------------------------------------------------------ API key
def test_promote_refused_when_no_key_is_configured(client: TestClient, manifest) -> None:
    response = client.post(f"/models/{manifest.model_id}/promote", headers={"X-API-Key": "x"})
    assert response.status_code == 403
    assert "CRYPTOPRED_API_KEY" in response.json()["detail"]


def test_promote_needs_the_right_key_and_switches_models(served) -> None:
    settings, manifest = served
    settings = _with_key(settings, KEY)
    _clone_model(settings, manifest, "BTC_USDT-1h-logreg-clone")
    with TestClient(create_app(settings)) as app_client:
        before = app_client.post("/predict", json={"features": features_of(manifest)}).json()
        missing = app_client.post("/models/BTC_USDT-1h-logreg-clone/promote")
        wrong = app_client.post(
            "/models/BTC_USDT-1h-logreg-clone/promote", headers={"X-API-Key": KEY + "x"}
        )
        unknown = app_client.post("/models/nope-model/promote", headers={"X-API-Key": KEY})
        traversal = app_client.post("/models/..%2Fcurrent/promote", headers={"X-API-Key": KEY})
        ok = app_client.post("/models/BTC_USDT-1h-logreg-clone/promote", headers={"X-API-Key": KEY})
        after = app_client.post("/predict", json={"features": features_of(manifest)}).json()
    assert missing.status_code == 401 and wrong.status_code == 401
    assert "X-API-Key" in wrong.json()["detail"]
    assert unknown.status_code == 404 and "nope-model" in unknown.json()["detail"]
    assert traversal.status_code in (404, 422)
    assert ok.status_code == 200, ok.text
    assert ok.json()["previous_model_id"] == manifest.model_id
    assert before["model_id"] == manifest.model_id
    assert after["model_id"] == "BTC_USDT-1h-logreg-clone"  # the cache reloaded at once
    assert (
        current_model_id(settings.ml.registry_dir, "BTC/USDT", "1h") == "BTC_USDT-1h-logreg-clone"
    )
    engine = make_engine(settings.storage.db_url)
    with session_scope(make_session_factory(engine), read_only=True) as session:
        events = list_model_events(session, model_id="BTC_USDT-1h-logreg-clone")
    engine.dispose()
    assert [(e.event, e.previous_model_id) for e in events] == [("promoted", manifest.model_id)]


def test_require_key_for_all_protects_every_route(served) -> None:
    settings = served[0]
    settings = _with_key(settings, KEY).model_copy(
        update={"api": settings.api.model_copy(update={"require_key_for_all": True})}
    )
    with TestClient(create_app(settings)) as app_client:
        for path in (
            "/",
            "/health",
            "/features",
            "/docs",
            "/openapi.json",
            "/static/plotly.min.js",
        ):
            assert app_client.get(path).status_code == 401, path
        assert app_client.get("/features", headers={"X-API-Key": KEY}).status_code == 200


# ------------------------------------------------------------------------------ CORS
def test_cors_is_off_by_default(client: TestClient) -> None:
    response = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        "/predict",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allows_only_configured_origins(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path, api={"cors_origins": ["https://dash.example"]})
    install_model(trained_registry, settings)
    with TestClient(create_app(settings)) as app_client:
        allowed = app_client.get("/features", headers={"Origin": "https://dash.example"})
        other = app_client.get("/features", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
    assert "access-control-allow-origin" not in other.headers


# ------------------------------------------------------------------------------ errors
def test_unexpected_errors_hide_the_traceback(served, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internals at /srv/app.py line 3")

    monkeypatch.setattr("api.routes.models.features_of", explode)
    with TestClient(create_app(served[0]), raise_server_exceptions=False) as app_client:
        response = app_client.get("/features")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error; the server log has the details"}
    assert "secret" not in response.text and "Traceback" not in response.text


def test_storage_errors_are_503(served, monkeypatch: pytest.MonkeyPatch) -> None:
    def database_down(*_args, **_kwargs):
        raise StorageError("Database API read failed on sqlite:///x.db: disk I/O error; retry")

    monkeypatch.setattr("api.routes.history.list_predictions", database_down)
    with TestClient(create_app(served[0])) as app_client:
        response = app_client.get("/predictions")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("Database API read failed")
