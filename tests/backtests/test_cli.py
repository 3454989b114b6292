"""`cryptopred backtest`: in-process CLI runs, bad options, and end to end on the real BTC file."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from storage.db import init_db, make_engine, make_session_factory, session_scope
from storage.repository import list_backtest_runs
from tests.backtests.conftest import SMALL_WALK_FORWARD
from tests.prerequisites import require_shared_file

runner = CliRunner()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """A config.yaml with every working path under tmp_path."""
    config: dict[str, Any] = {
        "data": {"cache_dir": str(tmp_path / "cache")},
        "ml": {"registry_dir": str(tmp_path / "models")},
        "backtest": {"reports_dir": str(tmp_path / "reports")},
        "storage": {"db_url": f"sqlite:///{tmp_path / 'cp.db'}"},
        "logging": {"level": "WARNING"},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        ml={"registry_dir": str(tmp_path / "models"), "walk_forward": SMALL_WALK_FORWARD},
        backtest={"reports_dir": str(tmp_path / "reports"), "models": ["logreg"]},
    )


def _stored_runs(db_url: str) -> list[Any]:
    engine = make_engine(db_url)
    init_db(engine)
    with session_scope(make_session_factory(engine), read_only=True) as session:
        runs = list_backtest_runs(session)
    engine.dispose()
    return runs


def test_cli_backtest_prints_report_and_ends_with_the_html_path(
    small_config: Path, candle_csv: Path, tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["--config", str(small_config), "backtest", "--data", str(candle_csv)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    html = Path(lines[-1])
    assert html.name == "report.html" and html.is_file()
    assert html.parent.parent == tmp_path / "reports"
    assert (html.parent / "report.json").is_file()
    assert "fold 1" in result.stdout and "baseline" in result.stdout
    assert "Verdict" in result.stdout and "buy-and-hold" in result.stdout
    (run,) = _stored_runs(f"sqlite:///{tmp_path / 'cp.db'}")
    assert run.id == html.parent.name and run.models == ("logreg",)


def test_cli_backtest_out_and_start_end_options(
    small_config: Path, candle_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "elsewhere"
    args = ["--start", "2021-01-05", "--end", "2021-03-01T00:00", "--out", str(out)]
    result = runner.invoke(
        app, ["--config", str(small_config), "backtest", "--data", str(candle_csv), *args]
    )
    assert result.exit_code == 0, result.output
    html = Path(result.stdout.strip().splitlines()[-1])
    assert html.parent.parent == out
    payload = json.loads((html.parent / "report.json").read_text())
    assert payload["data"]["start"] == "2021-01-05T00:00:00+00:00"
    assert payload["data"]["end"] == "2021-03-01T00:00:00+00:00"
    assert payload["settings"]["start"].startswith("2021-01-05T00:00:00")


def test_cli_backtest_unknown_model_exits_2_with_allowed_list(
    small_config: Path, candle_csv: Path
) -> None:
    result = runner.invoke(
        app,
        ["--config", str(small_config), "backtest", "--data", str(candle_csv), "-m", "lgbm"],
    )
    assert result.exit_code == 2
    assert "lgbm" in result.output
    assert "logreg, random_forest, xgboost, lightgbm, mlp" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2021-03-01", "--end", "2021-02-01"], "start must be before end"),
        (["--start", "yesterday"], "--start/--end"),
        (["--models", "logreg", "--model-id", "x"], "either --models"),
        (["--model-id", "no-such-model"], "not found"),
    ],
)
def test_cli_backtest_bad_options_exit_2(
    small_config: Path, candle_csv: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(
        app, ["--config", str(small_config), "backtest", "--data", str(candle_csv), *args]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_cli_backtest_model_id_flags_in_sample(
    small_config: Path, candle_csv: Path, tmp_path: Path
) -> None:
    trained = runner.invoke(
        app,
        ["--config", str(small_config), "train", "--data", str(candle_csv), "-m", "logreg"],
    )
    assert trained.exit_code == 0, trained.output
    (model_dir,) = [p for p in (tmp_path / "models").iterdir() if p.name != "current"]
    result = runner.invoke(
        app,
        [
            *("--config", str(small_config), "backtest", "--data", str(candle_csv)),
            *("--model-id", model_dir.name),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "IN-SAMPLE" in result.stdout
    html = Path(result.stdout.strip().splitlines()[-1])
    assert "IN-SAMPLE" in html.read_text(encoding="utf-8")
    (run,) = _stored_runs(f"sqlite:///{tmp_path / 'cp.db'}")
    assert run.model_ids == {"logreg": model_dir.name}
    assert run.metrics["logreg"]["in_sample"] is True


# ------------------------------------------------------------------ end to end (real data)
def _read_btc_csv(path: Path) -> pd.DataFrame:
    """The CryptoDataDownload file read with plain pandas (independent of data.files)."""
    raw = pd.read_csv(path)
    unix = raw["unix"].astype("float64")
    millis = np.where(unix > 1e11, unix, unix * 1000).astype("int64")
    frame = pd.DataFrame(
        {"open": raw["open"].to_numpy(), "close": raw["close"].to_numpy()},
        index=pd.to_datetime(millis, unit="ms", utc=True),
    )
    return frame.sort_index()


def _btc_backtest(tmp: Path, shared_data_dir: Path, **sections: dict[str, Any]) -> Path:
    """`cryptopred backtest` (LightGBM, default folds) on the shared BTC 1h file."""
    config = write_config(tmp, **sections)
    data = shared_data_dir / "Binance_BTCUSDT_1h.csv"
    env = {**os.environ, "COLUMNS": "200"}
    cryptopred = Path(sys.executable).parent / "cryptopred"
    done = subprocess.run(
        [str(cryptopred), "--config", str(config), "backtest", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    html = Path(done.stdout.strip().splitlines()[-1])
    assert html.is_file(), done.stdout[-2000:]
    return html


@pytest.fixture(scope="module")
def btc_report(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default backtest (decision.mode auto) on the shared BTC 1h file, once."""
    return _btc_backtest(tmp_path_factory.mktemp("e2e"), shared_data_dir)


@pytest.fixture(scope="module")
def btc_fixed_report(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same backtest trading the fixed 0.55/0.50 policy (it trades often: a fee test)."""
    tmp = tmp_path_factory.mktemp("e2e-fixed")
    return _btc_backtest(tmp, shared_data_dir, decision={"mode": "fixed"})


@pytest.fixture(scope="module")
def shared_data_dir() -> Path:
    return require_shared_file("Binance_BTCUSDT_1h.csv").parent


@pytest.mark.slow
def test_e2e_buy_and_hold_matches_the_csv(btc_report: Path, shared_data_dir: Path) -> None:
    payload = json.loads((btc_report.parent / "report.json").read_text(encoding="utf-8"))
    candles = _read_btc_csv(shared_data_dir / "Binance_BTCUSDT_1h.csv")
    start = pd.Timestamp(payload["period"]["start"])
    end = pd.Timestamp(payload["period"]["end"])
    first_open = candles.loc[[start], "open"]
    last_close = candles.loc[[end], "close"]
    assert len(first_open) == 1 and len(last_close) == 1  # outside the duplicated overlap
    expected = float(last_close.iloc[0]) / float(first_open.iloc[0]) - 1
    assert payload["buy_and_hold"]["total_return"] == pytest.approx(expected, rel=1e-9)
    (model,) = payload["models"]
    assert model["trading"]["buy_and_hold_return"] == pytest.approx(expected, rel=1e-9)
    assert model["algorithm"] == "lightgbm" and len(model["segments"]) >= 10
    assert btc_report.stat().st_size < 2_000_000  # plotly.js not included (a shared asset)


@pytest.mark.slow
def test_e2e_fee_changes_return_by_what_the_trade_count_implies(btc_fixed_report: Path) -> None:
    payload = json.loads((btc_fixed_report.parent / "report.json").read_text(encoding="utf-8"))
    assert payload["settings"]["decision"]["mode"] == "fixed"
    (model,) = payload["models"]
    points = {p["fee_bps"]: p for p in model["fee_sensitivity"]["points"]}
    free, paid = points[0.0], points[10.0]
    assert free["n_trades"] == paid["n_trades"] > 100  # fees do not change the signals
    assert paid["total_return"] == pytest.approx(model["trading"]["total_return"], rel=1e-6)
    # Each fill pays fee * traded value, about position_fraction * equity, two fills per trade:
    # equity shrinks by (1 - fee * fraction) per fill (entries and exits both).
    fraction = payload["settings"]["strategy"]["position_fraction"]
    assert btc_fixed_report.stat().st_size < 2_000_000  # > 10,000 trades: still a small page
    fills = 2 * paid["n_trades"]
    implied = fills * math.log1p(-0.001 * fraction)
    actual = math.log1p(paid["total_return"]) - math.log1p(free["total_return"])
    assert actual == pytest.approx(implied, rel=0.02)


@pytest.mark.slow
def test_e2e_report_renders_in_headless_chromium(chromium: Path, btc_report: Path) -> None:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: foreign.append(r.url) if not r.url.startswith("file://") else None,
        )
        page.goto(btc_report.as_uri())
        page.wait_for_function("() => window.Plotly !== undefined")
        page.wait_for_timeout(1500)
        counts = page.evaluate(
            "Array.from(document.querySelectorAll('.js-plotly-plot'))"
            ".map(d => [d.id, (d.data || []).length])"
        )
        page.screenshot(path="/tmp/backtest_report.png", full_page=True)
        browser.close()
    assert not errors, errors
    assert not foreign, foreign
    payload = json.loads((btc_report.parent / "report.json").read_text(encoding="utf-8"))
    panels = payload["models"][0]["trading"]["n_trades"] > 0  # best/worst trade panels
    pnl = payload["trades"]["statistics"]["n_trades"] > 0  # P&L histogram of the traded path
    # 8 model charts, PBO logits, hindsight grid (+ the trade charts when it traded)
    assert len(counts) == 10 + panels + pnl
    assert all(n > 0 for _, n in counts), counts
