"""`cryptopred serve` and the uvicorn factory's settings (the real server runs in test_browser)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import api.app as app_module
from api.app import CONFIG_ENV, create_app, known_pairs, settings_from_env
from cli.main import app as cli_app
from storage.db import init_db, make_engine
from tests.api.test_health import held_write_lock
from tests.factories import make_settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path, **api) -> Path:
    path = tmp_path / "config.yaml"
    config = {
        "data": {"symbol": "ETH/USDT", "timeframe": "4h"},
        "ml": {"registry_dir": str(tmp_path / "models")},
        "storage": {"db_url": f"sqlite:///{tmp_path / 'serve.db'}"},
        "api": {"port": 8765, **api},
        "logging": {"level": "WARNING"},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_serve_runs_uvicorn_with_the_factory(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr("api.cli.uvicorn.run", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setenv(CONFIG_ENV, "")  # restored after the test; serve overwrites it
    config = _config(tmp_path, workers=3)
    result = CliRunner().invoke(cli_app, ["--config", str(config), "serve", "--port", "9001"])
    assert result.exit_code == 0, result.output
    (args, kwargs) = calls[0]
    assert args == ("api.app:create_app",)
    assert kwargs["factory"] is True
    assert (kwargs["host"], kwargs["port"], kwargs["workers"]) == ("127.0.0.1", 9001, 3)
    assert kwargs["proxy_headers"] is False  # rate limits key on the real peer address
    assert os.environ[CONFIG_ENV] == str(config.resolve())


def test_serve_help_lists_its_options() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers"):
        assert option in result.output


def test_factory_reads_the_config_named_by_the_environment(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(_config(tmp_path)))
    assert settings_from_env().data.symbol == "ETH/USDT"
    monkeypatch.setattr(app_module, "setup_logging", lambda _cfg: None)
    app = create_app()
    assert app.state.settings.api.port == 8765
    assert ("ETH/USDT", "4h") in app.state.models.known_pairs


def test_factory_defaults_without_a_config(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./config.yaml here
    assert settings_from_env().data.symbol == "BTC/USDT"


def test_known_pairs_cover_data_and_bot() -> None:
    settings = make_settings(
        None, bot={"symbols": ["BTC/USDT", "SOL/USDT"], "timeframes": ["1h", "15m"]}
    )
    assert known_pairs(settings) == {
        ("BTC/USDT", "1h"), ("BTC/USDT", "15m"), ("SOL/USDT", "1h"), ("SOL/USDT", "15m"),
    }  # fmt: skip


@pytest.mark.slow
def test_serve_on_a_locked_database_prints_one_error_line(tmp_path) -> None:
    config = _config(tmp_path)
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["storage"]["busy_timeout_ms"] = 200
    raw["api"]["port"] = _free_port()
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    engine = make_engine(raw["storage"]["db_url"])
    init_db(engine)
    engine.dispose()
    cli = Path(sys.executable).with_name("cryptopred")
    with held_write_lock(tmp_path / "serve.db"):
        result = subprocess.run(
            [str(cli), "--config", str(config), "serve"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "database is locked" in errors[0], output
    assert "storage.busy_timeout_ms" in errors[0]
