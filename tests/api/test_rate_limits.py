"""Rate limits: failed authentication counts, and the client identity behind proxies."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import api_settings
from tests.api.test_security import KEY, _with_key


def test_wrong_api_keys_are_rate_limited_too(tmp_path) -> None:
    settings = _with_key(
        api_settings(tmp_path, api={"rate_limit": "3/minute", "require_key_for_all": True}), KEY
    )
    with TestClient(create_app(settings)) as app_client:
        wrong = [
            app_client.get("/health", headers={"X-API-Key": f"guess-{i}"}).status_code
            for i in range(5)
        ]
        right = app_client.get("/health", headers={"X-API-Key": KEY})
    assert wrong == [401, 401, 401, 429, 429]
    assert right.status_code == 429  # the guesses spent this client's budget
    assert "Retry-After" in right.headers
