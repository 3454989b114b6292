"""A corrupt manifest of the current model: a one-line 503, not pydantic's multi-line dump."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import api_settings, install_model


def test_model_info_with_a_corrupt_manifest_is_a_one_line_503(
    tmp_path: Path, trained_registry: Path
) -> None:
    settings = api_settings(tmp_path)
    manifest = install_model(trained_registry, settings)
    path = settings.ml.registry_dir / manifest.model_id / "manifest.json"
    path.write_text('{"model_id": "x", "symbol": 3}', encoding="utf-8")
    with TestClient(create_app(settings)) as client:
        reply = client.get("/model/info", params={"symbol": "BTC/USDT", "timeframe": "1h"})
    assert reply.status_code == 503
    detail = reply.json()["detail"]
    assert "\n" not in detail and len(detail) < 400
    assert "manifest.json is unreadable or corrupt (exchange: Field required (+14 more))" in detail
