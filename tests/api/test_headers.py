"""Security headers: CSP on the dashboard and reports, nosniff, no framing, no referrer."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.testclient import TestClient

from tests.api.conftest import RUN_ID

INLINE_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL)


def _directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


def _assert_common_headers(response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_dashboard_csp_allows_only_local_and_nonced_scripts(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    _assert_common_headers(response)
    policy = _directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    nonce_sources = [s for s in policy["script-src"] if s.startswith("'nonce-")]
    assert len(nonce_sources) == 1 and set(policy["script-src"]) == {"'self'", *nonce_sources}
    nonce = nonce_sources[0].removeprefix("'nonce-").removesuffix("'")
    scripts = INLINE_SCRIPT.findall(response.text)
    inline = [attributes for attributes, _body in scripts if "src=" not in attributes]
    assert len(inline) == 3  # one per Plotly chart, each carrying the nonce
    assert all(f'nonce="{nonce}"' in attributes for attributes in inline), inline
    again = client.get("/").headers["content-security-policy"]
    assert nonce not in again  # a fresh nonce per response


def test_report_csp_allows_exactly_its_inline_scripts_by_hash(client: TestClient) -> None:
    response = client.get(f"/reports/{RUN_ID}/report.html")
    assert response.status_code == 200
    _assert_common_headers(response)
    policy = _directives(response.headers["content-security-policy"])
    bodies = [body for attributes, body in INLINE_SCRIPT.findall(response.text)]
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in bodies
    ]
    assert bodies and set(policy["script-src"]) == {"'self'", *hashes}
    assert policy["frame-ancestors"] == ["'none'"]


def test_api_responses_and_files_get_the_strict_policy(client: TestClient) -> None:
    for path in ("/health", "/features", "/static/dashboard.js", "/nope"):
        response = client.get(path)
        _assert_common_headers(response)
        policy = _directives(response.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]


def test_api_docs_load_local_assets_only_and_cannot_be_framed(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "cdn.jsdelivr" not in response.text and "https://" not in response.text
    for asset in ("/static/swagger/swagger-ui-bundle.js", "/static/swagger/swagger-ui.css"):
        assert asset in response.text
        assert client.get(asset).status_code == 200, asset
    _assert_common_headers(response)
    assert "content-security-policy" not in response.headers
