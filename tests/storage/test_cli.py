"""The `db` sub-command: upgrade and info against the configured database."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from core.errors import ConfigError, StorageError
from core.settings import Settings
from storage.cli import app
from storage.db import make_engine, make_session_factory, session_scope
from storage.repository import insert_predictions
from tests.factories import make_settings
from tests.storage.factories import make_new_prediction

runner = CliRunner()


def test_db_upgrade_migrates_and_is_repeatable(settings: Settings) -> None:
    first = runner.invoke(app, ["upgrade"], obj=settings)
    assert first.exit_code == 0, first.output
    assert "schema empty -> 0003" in first.output
    second = runner.invoke(app, ["upgrade"], obj=settings)
    assert second.exit_code == 0, second.output
    assert "schema 0003 -> 0003" in second.output


def test_db_info_lists_tables_and_row_counts(settings: Settings, tmp_path: Path) -> None:
    assert runner.invoke(app, ["upgrade"], obj=settings).exit_code == 0
    engine = make_engine(settings.storage.db_url)
    with session_scope(make_session_factory(engine)) as session:
        insert_predictions(session, [make_new_prediction(i) for i in range(3)])
    engine.dispose()
    result = runner.invoke(app, ["info"], obj=settings)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"database  sqlite:///{tmp_path / 'test.db'}"
    assert "revision  0003 (latest 0003: up to date)" in lines
    counts = dict(line.split() for line in lines[3:])
    assert counts == {
        "alembic_version": "1",
        "backtest_runs": "0",
        "bot_runs": "0",
        "model_events": "0",
        "paper_marks": "0",
        "paper_orders": "0",
        "predictions": "3",
    }


def test_db_info_on_empty_database_says_upgrade(settings: Settings) -> None:
    result = runner.invoke(app, ["info"], obj=settings)
    assert result.exit_code == 0, result.output
    assert "revision  none (latest 0003: run `cryptopred db upgrade`)" in result.output


def test_db_command_without_settings_fails_clearly() -> None:
    result = runner.invoke(app, ["upgrade"])
    assert isinstance(result.exception, ConfigError)
    assert "cryptopred [--config FILE] db" in str(result.exception)


def test_db_upgrade_bad_url_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    settings = make_settings(tmp_path, storage={"db_url": f"sqlite:///{blocker}/db/x.db"})
    result = runner.invoke(app, ["upgrade"], obj=settings)
    assert isinstance(result.exception, StorageError)
    assert "Cannot create the directory" in str(result.exception)
