"""Rate limits: failed authentication counts, and the client identity behind proxies."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml
from fastapi.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api.app import CONFIG_ENV, create_app
from api.clients import UNVERIFIED_CLIENT, client_host
from tests.api.conftest import api_settings
from tests.api.test_security import KEY, _with_key
from tests.api.test_serve import _free_port


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


# ------------------------------------------------------------------------------ proxies
def _limited_app(tmp_path, **api):
    return create_app(api_settings(tmp_path, api={"rate_limit": "3/minute", **api}))


def _forged(app_client: TestClient, n: int) -> list[int]:
    return [
        app_client.get("/health", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(n)
    ]


def test_forged_forwarded_for_under_plain_uvicorn_does_not_change_the_client(tmp_path) -> None:
    # `uvicorn api.app:create_app --factory` wraps the app in this middleware (proxy_headers
    # defaults to on, trusting 127.0.0.1): it rewrites the client before the app sees it.
    app = ProxyHeadersMiddleware(_limited_app(tmp_path), trusted_hosts="127.0.0.1")
    with TestClient(app, client=("127.0.0.1", 50000)) as local:
        statuses = _forged(local, 5)
    assert [s == 429 for s in statuses] == [False, False, False, True, True], statuses


def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path) -> None:
    with TestClient(_limited_app(tmp_path), client=("198.51.100.7", 50000)) as direct:
        statuses = _forged(direct, 5)
    assert [s == 429 for s in statuses] == [False, False, False, True, True], statuses


def test_trusted_proxy_forwarded_for_names_the_client(tmp_path) -> None:
    app = _limited_app(tmp_path, trusted_proxies=["10.0.0.0/24"])
    with TestClient(app, client=("10.0.0.1", 50000)) as proxy:

        def via_proxy(chain: str) -> int:
            return proxy.get("/health", headers={"X-Forwarded-For": chain}).status_code

        first = [via_proxy("198.51.100.7") for _ in range(4)]
        # the client may prepend anything; the proxy appended the address it saw
        spoofed = via_proxy("203.0.113.1, 198.51.100.7")
        other = via_proxy("203.0.113.1, 198.51.100.8, 10.0.0.2")
    assert [s == 429 for s in first] == [False, False, False, True], first
    assert spoofed == 429
    assert other != 429  # another client behind the proxy chain has its own budget


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "expected"),
    [
        ("198.51.100.7", "1.2.3.4", [], "198.51.100.7"),
        ("10.0.0.1", "1.2.3.4", [], "10.0.0.1"),
        ("10.0.0.1", "1.2.3.4", ["10.0.0.1"], "1.2.3.4"),
        ("10.0.0.1", "9.9.9.9, 1.2.3.4:55, 10.0.0.9", ["10.0.0.0/24"], "1.2.3.4"),
        ("10.0.0.1", "10.0.0.7, 10.0.0.9", ["10.0.0.0/24"], "10.0.0.7"),
        ("::1", "[2001:db8::5]:443", ["::1"], "2001:db8::5"),
        ("1.2.3.4", "1.2.3.4", [], UNVERIFIED_CLIENT),
    ],
)
def test_client_host_reads_forwarded_for_only_from_trusted_proxies(
    peer: str, header: str, trusted: list[str], expected: str
) -> None:
    networks = [ipaddress.ip_network(network) for network in trusted]
    assert client_host(peer, [header], networks) == expected


@contextmanager
def running_server(tmp_path: Path, how: str) -> Iterator[str]:
    """A real server on a free port, started as `cryptopred serve` or as plain uvicorn."""
    port = _free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "ml": {"registry_dir": str(tmp_path / "models")},
                "storage": {"db_url": f"sqlite:///{tmp_path / 'limits.db'}"},
                "api": {"rate_limit": "3/minute", "port": port},
                "logging": {"level": "WARNING"},
            }
        ),
        encoding="utf-8",
    )
    bin_dir = Path(sys.executable).parent
    command = {
        "serve": [str(bin_dir / "cryptopred"), "--config", str(config), "serve"],
        "uvicorn": [str(bin_dir / "uvicorn"), "api.app:create_app", "--factory", f"--port={port}"],
    }[how]
    env = {**os.environ, CONFIG_ENV: str(config)}
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_port(port, process)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def _wait_for_port(port: int, process: subprocess.Popen, timeout_seconds: float = 30) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)  # waiting for a real server process
    raise AssertionError(f"no server on port {port} after {timeout_seconds} s")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["uvicorn", "serve"])
def test_forged_forwarded_for_is_rate_limited_in_a_real_server(tmp_path, how: str) -> None:
    with running_server(tmp_path, how) as base_url:
        statuses = [
            requests.get(
                f"{base_url}/features", headers={"X-Forwarded-For": f"203.0.113.{i}"}, timeout=10
            ).status_code
            for i in range(5)
        ]
    assert [s == 429 for s in statuses] == [False, False, False, True, True], statuses
