"""The data, train and models commands, run in-process through the real Typer app."""

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from ml.registry import current_model_id, list_models
from tests.cli.conftest import write_config

runner = CliRunner()


def test_cli_config_typo_exits_2_with_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  symbl: BTC/USDT\n")
    result = runner.invoke(app, ["--config", str(bad), "data", "info"])
    assert result.exit_code == 2
    assert "data.symbl: unknown key; did you mean 'symbol'?" in result.output


def test_cli_data_import_prints_report_and_caches(config_file: Path, candle_csv: Path) -> None:
    result = runner.invoke(app, ["--config", str(config_file), "data", "import", str(candle_csv)])
    assert result.exit_code == 0, result.output
    assert "Rows read" in result.output
    assert "3,000" in result.output
    info = runner.invoke(app, ["--config", str(config_file), "data", "info"])
    assert info.exit_code == 0
    assert "BTC/USDT" in info.output
    assert "3,000" in info.output


def test_cli_data_import_unknown_layout_exits_2(config_file: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_text("name,age\nbob,3\n")
    result = runner.invoke(app, ["--config", str(config_file), "data", "import", str(junk)])
    assert result.exit_code == 2
    assert "error:" in result.output


def test_cli_data_fetch_offline_fails_fast_with_hint(tmp_path: Path) -> None:
    config = write_config(tmp_path, exchange={"base_url": "http://127.0.0.1:9", "timeout_ms": 500})
    result = runner.invoke(app, ["--config", str(config), "data", "fetch"])
    assert result.exit_code == 2
    assert "DATA=" in result.output
    assert "Traceback" not in result.output


def test_cli_train_saves_promotes_and_lists(config_file: Path, candle_csv: Path) -> None:
    result = runner.invoke(
        app, ["--config", str(config_file), "train", "--data", str(candle_csv), "--check-leakage"]
    )
    assert result.exit_code == 0, result.output
    assert "Look-ahead check passed" in result.output
    assert "baseline" in result.output
    assert "binomial p" in result.output
    root = config_file.parent / "models"
    (manifest,) = list_models(root)
    assert current_model_id(root, "BTC/USDT", "1h") == manifest.model_id
    assert manifest.walk_forward is not None
    assert manifest.walk_forward is not None
    assert len(manifest.walk_forward.folds) >= 2
    assert manifest.decision is not None  # train validates and saves the decision policy
    assert set(manifest.feature_ranges) == set(manifest.feature_names)
    listed = runner.invoke(app, ["--config", str(config_file), "models", "list"])
    assert manifest.model_id in listed.output
    shown = runner.invoke(app, ["--config", str(config_file), "models", "show", manifest.model_id])
    assert json.loads(shown.output)["model_sha256"] == manifest.model_sha256


def test_cli_models_promote_unknown_exits_2(config_file: Path) -> None:
    result = runner.invoke(app, ["--config", str(config_file), "models", "promote", "nope"])
    assert result.exit_code == 2
    assert "not found" in result.output


def test_cli_train_select_with_an_unknown_model_fails_before_any_candle_is_read(
    tmp_path: Path,
) -> None:
    """A typo in --models is one error line, exit 2, without touching the exchange or files."""
    config = write_config(tmp_path, exchange={"base_url": "http://127.0.0.1:9"})
    result = runner.invoke(
        app, ["--config", str(config), "train", "--models", "logreg,nope", "--select"]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: --models: unknown model")
