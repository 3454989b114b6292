"""Symbol x model sweeps: Dask equals local, one report and record, CLI options, offline candles."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape
from typer.testing import CliRunner

from backtests.report import ReportFiles
from backtests.report_json import REPORT_SCHEMA_VERSION, report_payload
from backtests.run import ModelBacktest, run_backtest
from backtests.sweep import SweepResult, parse_symbols, run_sweep, task_settings
from backtests.sweep_report import (
    record_sweep,
    sweep_payload,
    symbols_label,
    write_sweep_report,
)
from cli.main import app
from core.errors import ConfigError, DataNotFoundError, NotEnoughDataError
from core.settings import ComputeSettings, Settings
from data.cache import cache_path, write_cache
from data.candles import load_cached_candles
from storage.db import init_db, make_engine, make_session_factory, session_scope
from storage.repository import list_backtest_runs
from tests.backtests.conftest import SMALL_WALK_FORWARD, small_settings
from tests.backtests.test_cli import write_config
from tests.backtests.test_report import documented_keys
from tests.factories import make_ohlcv

runner = CliRunner()
SCHEMA_DOC = Path(__file__).resolve().parents[2] / "backtests" / "SWEEP_SCHEMA.md"
LOCAL_CLUSTER = ComputeSettings(backend="dask", scheduler_address="local-cluster", n_jobs=2)
SYMBOLS = ("BTC/USDT", "ETH/USDT")
N_SWEEP = 1500


def sweep_candles() -> dict[str, pd.DataFrame]:
    """Two symbols with different paths and price levels (deterministic)."""
    return {
        "BTC/USDT": make_ohlcv(N_SWEEP, seed=11),
        "ETH/USDT": make_ohlcv(N_SWEEP, seed=12, price=2_000.0, volatility=0.014),
    }


def stored_runs(db_url: str) -> list[Any]:
    engine = make_engine(db_url)
    init_db(engine)
    with session_scope(make_session_factory(engine), read_only=True) as session:
        runs = list_backtest_runs(session)
    engine.dispose()
    return runs


# ------------------------------------------------------------------ one local sweep (fast)
@pytest.fixture(scope="module")
def sweep_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return small_settings(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def local_sweep(sweep_settings: Settings) -> SweepResult:
    """2 symbols x logreg on the local backend (a few seconds)."""
    return run_sweep(sweep_candles(), sweep_settings, timeframe="1h", algorithms=["logreg"])


@pytest.fixture(scope="module")
def sweep_files(local_sweep: SweepResult, sweep_settings: Settings) -> ReportFiles:
    return write_sweep_report(local_sweep, sweep_settings.backtest.reports_dir)


def test_run_sweep_keeps_symbol_order_and_one_run_per_symbol(local_sweep: SweepResult) -> None:
    assert local_sweep.symbols == SYMBOLS
    assert [run.symbol for run in local_sweep.runs] == list(SYMBOLS)
    assert all(run.run_id == local_sweep.run_id for run in local_sweep.runs)
    assert [len(run.models) for run in local_sweep.runs] == [1, 1]
    assert len(local_sweep.task_seconds) == 2 and min(local_sweep.task_seconds) > 0
    holds = [run.buy_and_hold.total_return for run in local_sweep.runs]
    assert holds[0] != holds[1]  # each symbol's own buy-and-hold


def test_sweep_json_keys_match_the_documented_schema(sweep_files: ReportFiles) -> None:
    payload = json.loads(sweep_files.json.read_text(encoding="utf-8"))
    documented = documented_keys(SCHEMA_DOC)
    objects = {
        "sweep": [payload],
        "compute": [payload["compute"]],
        "sweep_row": payload["leaderboard"],
        "task": payload["tasks"],
        "files": [payload["files"]],
    }
    assert set(objects) | {"run_record"} == set(documented)
    for section, items in objects.items():
        for item in items:
            assert set(item) == documented[section], f"{section}: {set(item) ^ documented[section]}"
    assert payload["kind"] == "sweep" and payload["symbols"] == list(SYMBOLS)
    assert set(payload["buy_and_hold"]) == set(SYMBOLS)
    assert [run["schema_version"] for run in payload["runs"]] == [REPORT_SCHEMA_VERSION] * 2


def test_sweep_runs_embed_the_single_run_report_of_each_symbol(
    local_sweep: SweepResult, sweep_files: ReportFiles
) -> None:
    payload = json.loads(sweep_files.json.read_text(encoding="utf-8"))
    for run, embedded in zip(local_sweep.runs, payload["runs"], strict=True):
        assert embedded == json.loads(json.dumps(report_payload(run), allow_nan=False))
        assert embedded["symbol"] == run.symbol


def test_sweep_leaderboard_ranks_by_return_over_buy_and_hold(local_sweep: SweepResult) -> None:
    rows = sweep_payload(local_sweep)["leaderboard"]
    assert [row["rank"] for row in rows] == [1, 2]
    excess = [row["excess_return"] for row in rows]
    assert excess == sorted(excess, reverse=True)
    for row in rows:
        run = local_sweep.runs[SYMBOLS.index(row["symbol"])]
        assert row["buy_and_hold_return"] == pytest.approx(run.buy_and_hold.total_return)
        assert row["excess_return"] == pytest.approx(
            row["total_return"] - row["buy_and_hold_return"]
        )


def test_sweep_html_has_leaderboard_and_every_symbols_sections(
    sweep_files: ReportFiles, local_sweep: SweepResult
) -> None:
    html = sweep_files.html.read_text(encoding="utf-8")
    chart_ids = re.findall(r'id="chart-([^"]+)"', html)
    assert len(chart_ids) == len(set(chart_ids))
    assert {cid.split("-")[0] for cid in chart_ids} == {"BTC_USDT", "ETH_USDT"}
    always = {"pbo", "hindsight", "price", "equity", "roc", "confusion", "calibration"}
    always |= {"importance", "folds", "fees"}  # trade panels and P&L only when it traded
    for prefix in ("BTC_USDT", "ETH_USDT"):
        assert always <= {cid.removeprefix(f"{prefix}-") for cid in chart_ids}
    assert "Leaderboard: symbols \u00d7 models" in html
    assert html.count("fold 1") >= len(SYMBOLS)  # each symbol's per-fold table
    sources = re.findall(r"<script\b[^>]*src=\"([^\"]+)\"", html)
    assert sources == [f"../assets/{sweep_files.plotly_js.name}"]
    assert (sweep_files.run_dir / sources[0]).resolve() == sweep_files.plotly_js.resolve()
    for line in sweep_payload(local_sweep)["verdict"]:
        assert str(escape(line)) in html


def test_record_sweep_stores_one_run_keyed_by_pair(
    local_sweep: SweepResult, sweep_files: ReportFiles, sweep_settings: Settings
) -> None:
    record_sweep(local_sweep, sweep_files, sweep_settings)
    (run,) = [r for r in stored_runs(sweep_settings.storage.db_url) if r.id == local_sweep.run_id]
    assert run.symbol == "BTC/USDT,ETH/USDT" and run.models == ("logreg",)
    assert set(run.metrics) == {"BTC/USDT logreg", "ETH/USDT logreg"}
    eth = local_sweep.runs[1].models[0]
    assert run.metrics["ETH/USDT logreg"]["total_return"] == pytest.approx(eth.trading.total_return)
    assert run.report_path == f"{local_sweep.run_id}/report.html"
    assert run.period_start_ms == min(
        int(r.period_start.timestamp() * 1000) for r in local_sweep.runs
    )


def test_symbols_label_fits_the_record_column() -> None:
    many = tuple(f"COIN{i:02d}/USDT" for i in range(50))
    label = symbols_label(many)
    assert len(label) <= 64 and label.startswith("COIN00/USDT,") and label.endswith(" +45")
    assert symbols_label(SYMBOLS) == "BTC/USDT,ETH/USDT"


def test_task_settings_run_locally_without_secrets(sweep_settings: Settings) -> None:
    remote = sweep_settings.model_copy(
        update={
            "compute": LOCAL_CLUSTER,
            "secrets": sweep_settings.secrets.model_copy(update={"api_key": "k"}),
        }
    )
    shipped = task_settings(remote)
    assert shipped.compute == ComputeSettings()  # no nested dispatch from inside a task
    assert shipped.secrets.api_key is None
    assert shipped.storage.db_url != remote.storage.db_url  # a DB URL may carry a password
    assert shipped.ml == remote.ml and shipped.strategy == remote.strategy


def test_run_sweep_task_error_names_the_pair(sweep_settings: Settings) -> None:
    tiny = {"BTC/USDT": make_ohlcv(1500, seed=1), "DOGE/USDT": make_ohlcv(120, seed=2)}
    with pytest.raises(NotEnoughDataError, match="DOGE/USDT logreg"):
        run_sweep(tiny, sweep_settings, timeframe="1h", algorithms=["logreg"])


def test_parse_symbols_keeps_order_and_rejects_bad_lists() -> None:
    assert parse_symbols(" ETH/USDT,BTC/USDT ,") == ("ETH/USDT", "BTC/USDT")
    with pytest.raises(ConfigError, match="more than once"):
        parse_symbols("BTC/USDT,ETH/USDT,BTC/USDT")
    with pytest.raises(ConfigError, match="ccxt format"):
        parse_symbols("BTCUSDT,ETH/USDT")
    with pytest.raises(ConfigError, match="names no symbol"):
        parse_symbols(" , ")


# ------------------------------------------------------------------ cached (offline) candles
def test_load_cached_candles_reads_the_cache_and_names_the_import_command(
    tmp_path: Path,
) -> None:
    settings = small_settings(tmp_path)
    candles = make_ohlcv(300, seed=3)
    write_cache(candles, cache_path(settings.data.cache_dir, "binance", "BTC/USDT", "1h"))
    prepared = load_cached_candles(
        settings.data, exchange_id="binance", symbol="BTC/USDT", timeframe="1h"
    )
    pd.testing.assert_frame_equal(prepared.frame, candles, check_freq=False)
    assert prepared.origin.startswith("cache:")
    with pytest.raises(DataNotFoundError, match="cryptopred data import FILE --symbol ETH/USDT"):
        load_cached_candles(settings.data, exchange_id="binance", symbol="ETH/USDT", timeframe="1h")


# ------------------------------------------------------------------ CLI
@pytest.fixture
def sweep_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        ml={"registry_dir": str(tmp_path / "models"), "walk_forward": SMALL_WALK_FORWARD},
        backtest={"reports_dir": str(tmp_path / "reports"), "models": ["logreg"]},
    )


def write_csv(path: Path, candles: pd.DataFrame) -> Path:
    out = candles.reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)
    return path


@pytest.fixture
def csv_files(tmp_path: Path) -> list[Path]:
    return [
        write_csv(tmp_path / f"{symbol.split('/')[0]}.csv", frame)
        for symbol, frame in sweep_candles().items()
    ]


def invoke(config: Path, *args: str) -> Any:
    return runner.invoke(app, ["--config", str(config), "backtest", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--symbol", "BTC/USDT", "--symbols", "BTC/USDT,ETH/USDT"],
            "either --symbol or --symbols",
        ),
        (["--symbols", "BTC/USDT,ETH/USDT", "--data", "a.csv"], "1 --data file(s) for 2 symbol(s)"),
        (["--symbols", "BTC/USDT", "--data", "a.csv", "--data", "b.csv"], "2 --data file(s)"),
        (["--data", "a.csv", "--data", "b.csv"], "one --data FILE per symbol"),
        (
            ["--symbols", "BTC/USDT,ETH/USDT", "--data", "a.csv", "--data", "b.csv", "--offline"],
            "either --data files or --offline",
        ),
        (["--symbols", "BTC/USDT,ETH/USDT", "--model-id", "m"], "--model-id backtests one"),
        (["--symbols", "BTC/USDT,BTC/USDT"], "more than once"),
        (["--symbols", "BTC/USDT,ETH/USDT", "--offline"], "cryptopred data import FILE"),
        (["--symbols", "BTC/USDT,ETH/USDT", "--models", "lgbm"], "allowed: logreg"),
    ],
)
def test_cli_sweep_bad_options_exit_2_with_a_fix(
    sweep_config: Path, args: list[str], message: str
) -> None:
    result = invoke(sweep_config, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_sweep_refuses_the_single_data_file_of_the_config(
    tmp_path: Path, csv_files: list[Path]
) -> None:
    config = write_config(
        tmp_path, data={"cache_dir": str(tmp_path / "c"), "file": str(csv_files[0])}
    )
    result = invoke(config, "--symbols", "BTC/USDT,ETH/USDT")
    assert result.exit_code == 2
    assert "data.file" in result.output and "one --data FILE per symbol" in result.output


def test_cli_sweep_refuses_symbols_of_different_timeframes(
    sweep_config: Path, tmp_path: Path
) -> None:
    hourly = write_csv(tmp_path / "h.csv", make_ohlcv(200, seed=1))
    four_hourly = write_csv(tmp_path / "f.csv", make_ohlcv(200, timeframe="4h", seed=2))
    result = invoke(
        sweep_config,
        "--symbols",
        "BTC/USDT,ETH/USDT",
        "--data",
        str(hourly),
        "--data",
        str(four_hourly),
    )
    assert result.exit_code == 2
    assert "one timeframe" in result.output and "ETH/USDT 4h" in result.output


def test_cli_sweep_with_files_then_offline_writes_one_report_and_record(
    sweep_config: Path, csv_files: list[Path], tmp_path: Path
) -> None:
    symbols = ",".join(SYMBOLS)
    files = [arg for path in csv_files for arg in ("--data", str(path))]
    first = invoke(sweep_config, "--symbols", symbols, *files)
    assert first.exit_code == 0, first.output
    html = Path(first.stdout.strip().splitlines()[-1])
    assert html.name == "report.html" and html.is_file()
    assert "Sweep leaderboard" in first.stdout and "ETH/USDT" in first.stdout
    payload = json.loads((html.parent / "report.json").read_text(encoding="utf-8"))
    assert payload["kind"] == "sweep" and len(payload["leaderboard"]) == 2
    # the files went into the cache: the same sweep offline gives the same numbers
    second = invoke(sweep_config, "--symbols", symbols, "--offline")
    assert second.exit_code == 0, second.output
    again = Path(second.stdout.strip().splitlines()[-1])
    offline = json.loads((again.parent / "report.json").read_text(encoding="utf-8"))
    assert offline["leaderboard"] == payload["leaderboard"]
    runs = stored_runs(f"sqlite:///{tmp_path / 'cp.db'}")
    assert sorted(run.id for run in runs) == sorted([html.parent.name, again.parent.name])
    assert all(set(run.metrics) == {"BTC/USDT logreg", "ETH/USDT logreg"} for run in runs)


def test_cli_symbols_with_one_symbol_is_the_single_run(
    sweep_config: Path, csv_files: list[Path]
) -> None:
    result = invoke(sweep_config, "--symbols", "ETH/USDT", "--data", str(csv_files[1]))
    assert result.exit_code == 0, result.output
    html = Path(result.stdout.strip().splitlines()[-1])
    payload = json.loads((html.parent / "report.json").read_text(encoding="utf-8"))
    assert "kind" not in payload and payload["symbol"] == "ETH/USDT"
    assert "Sweep leaderboard" not in result.stdout and "fold 1" in result.stdout


# ------------------------------------------------------------------ Dask == local (slow)
def assert_same_values(local: Any, remote: Any) -> None:
    """Exactly equal dataclasses (NaN equals NaN: e.g. the win rate of a fold without trades)."""
    np.testing.assert_equal(asdict(local), asdict(remote))


def assert_same_model(local: ModelBacktest, remote: ModelBacktest) -> None:
    assert local.algorithm == remote.algorithm
    pd.testing.assert_frame_equal(local.predictions, remote.predictions)
    pd.testing.assert_series_equal(local.proba_up, remote.proba_up)
    for name in ("classification", "significance", "trading", "fee_sensitivity", "baselines"):
        assert_same_values(getattr(local, name), getattr(remote, name))
    assert len(local.segments) == len(remote.segments) > 1
    for mine, theirs in zip(local.segments, remote.segments, strict=True):
        assert_same_values(mine, theirs)
    pd.testing.assert_series_equal(local.run.equity, remote.run.equity)
    pd.testing.assert_frame_equal(local.run.trades, remote.run.trades)
    pd.testing.assert_frame_equal(local.importances, remote.importances)


def assert_same_sweep(local: SweepResult, remote: SweepResult) -> None:
    assert (local.symbols, local.algorithms) == (remote.symbols, remote.algorithms)
    assert local.config_hash == remote.config_hash
    for local_run, remote_run in zip(local.runs, remote.runs, strict=True):
        pd.testing.assert_frame_equal(local_run.candles, remote_run.candles)
        assert_same_values(local_run.buy_and_hold, remote_run.buy_and_hold)
        for local_model, remote_model in zip(local_run.models, remote_run.models, strict=True):
            assert_same_model(local_model, remote_model)


@pytest.mark.slow
def test_sweep_on_a_two_worker_local_cluster_equals_the_local_run(tmp_path: Path) -> None:
    from distributed import get_task_stream

    from ml.compute import dask_client

    settings = small_settings(tmp_path)
    candles = sweep_candles()
    models: list[Any] = ["logreg", "lightgbm"]
    local = run_sweep(candles, settings, timeframe="1h", algorithms=models)
    remote_settings = settings.model_copy(update={"compute": LOCAL_CLUSTER})
    with dask_client(LOCAL_CLUSTER) as client, get_task_stream(client=client) as stream:
        remote = run_sweep(candles, remote_settings, timeframe="1h", algorithms=models)
        workers = set(client.scheduler_info()["workers"])
    ran = [task for task in stream.data if task["key"].startswith("run_sweep_task")]
    assert len(ran) == 4 and {task["worker"] for task in ran} <= workers and len(workers) == 2
    assert_same_sweep(local, remote)
    # and each symbol equals a plain multi-model run_backtest of that symbol
    for run in local.runs:
        direct = run_backtest(
            candles[run.symbol], settings, symbol=run.symbol, timeframe="1h", algorithms=models
        )
        for mine, theirs in zip(run.models, direct.models, strict=True):
            assert_same_model(mine, theirs)
        assert run.config_hash == direct.config_hash
    assert sweep_payload(local)["leaderboard"] == sweep_payload(remote)["leaderboard"]


@pytest.mark.slow
def test_cli_sweep_runs_on_dask_by_config_only(tmp_path: Path, csv_files: list[Path]) -> None:
    reports: dict[str, dict[str, Any]] = {}
    for backend, compute in (("local", {}), ("dask", LOCAL_CLUSTER.model_dump())):
        root = tmp_path / backend
        root.mkdir()
        config = write_config(
            root,
            ml={"registry_dir": str(root / "models"), "walk_forward": SMALL_WALK_FORWARD},
            compute=compute,
        )
        files = [arg for path in csv_files for arg in ("--data", str(path))]
        result = invoke(config, "--symbols", ",".join(SYMBOLS), "-m", "logreg,lightgbm", *files)
        assert result.exit_code == 0, result.output
        html = Path(result.stdout.strip().splitlines()[-1])
        reports[backend] = json.loads((html.parent / "report.json").read_text(encoding="utf-8"))
    assert reports["dask"]["compute"]["backend"] == "dask"
    assert reports["dask"]["leaderboard"] == reports["local"]["leaderboard"]
    for local_run, dask_run in zip(reports["local"]["runs"], reports["dask"]["runs"], strict=True):
        volatile = {"run_id", "created_at", "seconds", "models"}
        assert {k: v for k, v in local_run.items() if k not in volatile} == {
            k: v for k, v in dask_run.items() if k not in volatile
        }
        for a, b in zip(local_run["models"], dask_run["models"], strict=True):
            timing = {"fit_seconds", "backtest_seconds"}
            assert {k: v for k, v in a.items() if k not in timing} == {
                k: v for k, v in b.items() if k not in timing
            }
