"""`serving.promotion.promote`: every caller moves the pointer AND leaves the same audit event."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from bot.deps import BotDeps
from bot.retrain import RetrainDecision, record_decision
from cli.main import app as cli_app
from core.errors import ModelNotFoundError
from core.settings import Settings
from ml.registry import current_model_id
from serving.models import ModelCache
from serving.promotion import ACTOR_TEXT, promote
from storage.db import init_db, make_engine, make_session_factory, session_scope
from storage.repository import list_model_events
from tests.api.conftest import api_settings, install_model

KEY = "promotion-test-key"
CLONE = "BTC_USDT-1h-logreg-clone"


def _clone(settings: Settings, model_id: str) -> None:
    root = settings.ml.registry_dir
    shutil.copytree(root / model_id, root / CLONE)
    path = root / CLONE / "manifest.json"
    payload = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**payload, "model_id": CLONE}), encoding="utf-8")


def _by_cli(settings: Settings, tmp_path: Path) -> None:
    config = {
        "ml": {"registry_dir": str(settings.ml.registry_dir)},
        "storage": {"db_url": settings.storage.db_url},
        "logging": {"level": "WARNING"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["--config", str(path), "models", "promote", CLONE])
    assert result.exit_code == 0, result.output
    assert "previous BTC_USDT-1h" in result.output


def _by_api(settings: Settings, tmp_path: Path) -> None:
    secrets = settings.secrets.model_validate({"api_key": KEY})
    with TestClient(create_app(settings.model_copy(update={"secrets": secrets}))) as client:
        response = client.post(f"/models/{CLONE}/promote", headers={"X-API-Key": KEY})
    assert response.status_code == 200, response.text


def _by_retrainer(settings: Settings, tmp_path: Path) -> None:
    engine = make_engine(settings.storage.db_url)
    init_db(engine)
    deps = BotDeps(
        settings=settings,
        source=None,  # type: ignore[arg-type]  # recording a decision fetches nothing
        session_factory=make_session_factory(engine),
        models=ModelCache(settings.ml.registry_dir),
    )
    previous = current_model_id(settings.ml.registry_dir, "BTC/USDT", "1h")
    decision = RetrainDecision(
        "BTC/USDT", "1h", CLONE, str(previous), True, 0.55, 0.52, "ROC-AUC 0.55 vs 0.52"
    )
    record_decision(deps, decision, now=datetime.now(UTC), accuracy=0.53)
    engine.dispose()


@pytest.mark.parametrize(
    ("caller", "actor"), [(_by_cli, "cli"), (_by_api, "api"), (_by_retrainer, "retrainer")]
)
def test_promote_every_caller_moves_the_pointer_and_records_the_same_event(
    tmp_path,
    trained_registry,
    caller,
    actor,
) -> None:
    settings = api_settings(tmp_path)
    manifest = install_model(trained_registry, settings)
    _clone(settings, manifest.model_id)
    caller(settings, tmp_path)
    assert current_model_id(settings.ml.registry_dir, "BTC/USDT", "1h") == CLONE
    engine = make_engine(settings.storage.db_url)
    with session_scope(make_session_factory(engine), read_only=True) as session:
        events = list_model_events(session)
    engine.dispose()
    assert [(e.event, e.symbol, e.timeframe, e.model_id, e.previous_model_id) for e in events] == [
        ("promoted", "BTC/USDT", "1h", CLONE, manifest.model_id)
    ]
    assert events[0].reason.startswith(ACTOR_TEXT[actor]), events[0].reason


def test_promote_an_unknown_model_changes_nothing(tmp_path, trained_registry) -> None:
    settings = api_settings(tmp_path)
    manifest = install_model(trained_registry, settings)
    engine = make_engine(settings.storage.db_url)
    init_db(engine)
    factory = make_session_factory(engine)
    with pytest.raises(ModelNotFoundError):
        promote(settings.ml.registry_dir, factory, "nope-model", actor="cli")
    with session_scope(factory, read_only=True) as session:
        assert list_model_events(session) == []
    engine.dispose()
    assert current_model_id(settings.ml.registry_dir, "BTC/USDT", "1h") == manifest.model_id
