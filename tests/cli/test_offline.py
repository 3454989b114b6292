"""Offline paths of the README: `make run` on the bundled sample, --offline on the cache, and an
unreachable-exchange error that names the cache. The exchange is a closed port on 127.0.0.1."""

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from ml.registry import list_models
from tests.cli.conftest import write_config

runner = CliRunner()
CLOSED = {"base_url": "http://127.0.0.1:9", "timeout_ms": 500}


def _offline_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, exchange=CLOSED)


def _import(config: Path, candle_csv: Path) -> None:
    result = runner.invoke(app, ["--config", str(config), "data", "import", str(candle_csv)])
    assert result.exit_code == 0, result.output


def test_cli_backtest_without_data_or_exchange_runs_on_the_sample_and_says_so(
    tmp_path: Path,
) -> None:
    # `make run` on a fresh clone without internet; --start keeps the walk-forward small.
    config = _offline_config(tmp_path)
    args = ["--config", str(config), "backtest", "--start", "2021-03-01"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    notices = [line for line in result.output.splitlines() if "Cannot reach binance" in line]
    assert len(notices) == 1 and "bundled sample BTC/USDT 1h" in notices[0]
    label = "Data: bundled sample BTC/USDT 1h 2019-06-01..2021-06-09 (binance, not live data)"
    assert label in result.output
    html = Path(result.output.strip().splitlines()[-1])
    payload = json.loads((html.parent / "report.json").read_text(encoding="utf-8"))
    assert payload["data_sample"] is True
    assert payload["data_source"] == label.removeprefix("Data: ")
    assert payload["data"]["start"].startswith("2021-03-01")
    assert f'class="banner">{label}' in html.read_text(encoding="utf-8")
    assert not (tmp_path / "cache").exists()


def test_cli_backtest_and_train_refuse_the_exchange_naming_the_cache_and_offline(
    tmp_path: Path, candle_csv: Path
) -> None:
    config = _offline_config(tmp_path)
    _import(config, candle_csv)
    cache = tmp_path / "cache" / "binance" / "BTC_USDT-1h.parquet"
    for command in ("backtest", "train"):
        result = runner.invoke(app, ["--config", str(config), command])
        assert result.exit_code == 2, result.output
        error = result.output.strip().splitlines()[-1]
        assert error.startswith("error: cannot reach binance")
        assert "3,000 BTC/USDT 1h candles" in error and str(cache) in error
        assert "--offline" in error and "bundled sample" not in result.output


def test_cli_backtest_offline_uses_the_cache(tmp_path: Path, candle_csv: Path) -> None:
    config = _offline_config(tmp_path)
    _import(config, candle_csv)
    result = runner.invoke(app, ["--config", str(config), "backtest", "--offline"])
    assert result.exit_code == 0, result.output
    cache = tmp_path / "cache" / "binance" / "BTC_USDT-1h.parquet"
    assert f"Data: candle cache {cache}" in result.output
    html = Path(result.output.strip().splitlines()[-1])
    payload = json.loads((html.parent / "report.json").read_text(encoding="utf-8"))
    assert payload["data_sample"] is False and payload["data"]["n_candles"] == 3000


def test_cli_train_offline_uses_the_cache(tmp_path: Path, candle_csv: Path) -> None:
    config = _offline_config(tmp_path)
    _import(config, candle_csv)
    result = runner.invoke(app, ["--config", str(config), "train", "--offline"])
    assert result.exit_code == 0, result.output
    (manifest,) = list_models(tmp_path / "models")
    assert manifest.n_train_rows > 0
    assert f"Saved model {manifest.model_id}" in result.output


def test_cli_train_offline_without_cache_says_how_to_fill_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--config", str(_offline_config(tmp_path)), "train", "--offline"])
    assert result.exit_code == 2
    assert "cryptopred data import FILE" in result.output


def test_cli_data_fetch_unreachable_names_the_cache(tmp_path: Path, candle_csv: Path) -> None:
    config = _offline_config(tmp_path)
    _import(config, candle_csv)
    result = runner.invoke(app, ["--config", str(config), "data", "fetch"])
    assert result.exit_code == 2
    assert "3,000 BTC/USDT 1h candles" in result.output and "--offline" in result.output
