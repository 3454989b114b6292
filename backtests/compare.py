"""Comparing recorded backtest runs: their headline metrics side by side and their equity curves
on one chart, read from the run records and the JSON reports already stored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.echo import echo_value
from core.errors import ConfigError, DataNotFoundError
from core.settings import Settings
from storage.db import init_db, make_engine, make_session_factory, session_scope
from storage.repository import BacktestRun, get_backtest_run, list_backtest_runs
from strategy.costs import BPS

MAX_COMPARED_RUNS = 8
KNOWN_RUNS_LISTED = 5
"""An unknown run id's error names this many recent runs."""


@dataclass(frozen=True, slots=True)
class ComparedRun:
    """One run's headline, as stored: the traded decision path against buy-and-hold.

    `equity` and `buy_and_hold_equity` are the sampled curves of the JSON report (None for
    reports written before they were stored); `report_json` is where they were read from.
    """

    run_id: str
    symbol: str
    timeframe: str
    models: tuple[str, ...]
    horizons: tuple[int, ...]
    decision_mode: str
    fee_bps: float
    period_start: pd.Timestamp
    period_end: pd.Timestamp
    n_candles: int
    total_return: float | None
    buy_and_hold_return: float | None
    sharpe: float | None
    buy_and_hold_sharpe: float | None
    max_drawdown: float | None
    buy_and_hold_max_drawdown: float | None
    n_trades: int | None
    exposure: float | None
    roc_auc: float | None
    p_value: float | None
    break_even_bps: float | None
    equity: pd.Series | None
    buy_and_hold_equity: pd.Series | None
    report_html: Path | None
    report_json: Path

    @property
    def label(self) -> str:
        """What tells this run apart in a legend: models, horizons, decision, fee and period."""
        horizons = "/".join(f"h{h}" for h in self.horizons)
        return (
            f"{'+'.join(self.models)} {horizons} {self.decision_mode} · {self.fee_bps:g} bps · "
            f"{self.period_start:%Y-%m-%d}→{self.period_end:%Y-%m-%d}"
        )


def load_compared_runs(settings: Settings, run_ids: Sequence[str]) -> list[ComparedRun]:
    """The recorded runs `run_ids` (in that order) with their JSON reports.

    Raises:
        ConfigError: fewer than two or more than `MAX_COMPARED_RUNS` ids, or one twice.
        DataNotFoundError: an unknown run id, or a run whose JSON report is gone.
        StorageError: the database cannot be read.
    """
    _check_ids(run_ids)
    records = _records(settings, run_ids)
    return [_compared(record, settings.backtest.reports_dir) for record in records]


def _check_ids(run_ids: Sequence[str]) -> None:
    if not 2 <= len(run_ids) <= MAX_COMPARED_RUNS:
        raise ConfigError(f"compare needs 2 to {MAX_COMPARED_RUNS} run ids, got {len(run_ids)}")
    twice = sorted({i for i in run_ids if run_ids.count(i) > 1})
    if twice:
        raise ConfigError(f"run id given twice: {echo_value(twice[0], max_chars=80)}")


def _records(settings: Settings, run_ids: Sequence[str]) -> list[BacktestRun]:
    engine = make_engine(settings.storage.db_url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        init_db(engine)
        factory = make_session_factory(engine)
        with session_scope(factory, operation="read backtest runs", read_only=True) as session:
            found = {run_id: get_backtest_run(session, run_id) for run_id in run_ids}
            missing = [run_id for run_id, run in found.items() if run is None]
            recent = [run.id for run in list_backtest_runs(session, limit=KNOWN_RUNS_LISTED)]
    finally:
        engine.dispose()
    if missing:
        known = ", ".join(recent) if recent else "none recorded yet (run `cryptopred backtest`)"
        raise DataNotFoundError(
            f"unknown backtest run {echo_value(missing[0], max_chars=80)}; newest runs: {known}"
        )
    return [run for run in found.values() if run is not None]


def stored_file(path: str | None, reports_dir: Path) -> Path | None:
    """A path of a run record: relative to the reports directory unless absolute.

    >>> stored_file("a/report.json", Path("/r")), stored_file(None, Path("/r"))
    (PosixPath('/r/a/report.json'), None)
    """
    if path is None:
        return None
    stored = Path(path)
    return stored if stored.is_absolute() else reports_dir / stored


def _compared(record: BacktestRun, reports_dir: Path) -> ComparedRun:
    json_path = stored_file(record.json_path, reports_dir)
    if json_path is None or not json_path.is_file():
        raise DataNotFoundError(
            f"the JSON report of run {record.id} is missing ({json_path}); "
            "was the reports directory moved? (backtest.reports_dir)"
        )
    payload = json.loads(json_path.read_text(encoding="utf-8"))
    html = stored_file(record.report_path, reports_dir)
    return ComparedRun(
        run_id=record.id,
        symbol=record.symbol,
        timeframe=record.timeframe,
        models=tuple(record.models),
        horizons=_horizons(payload),
        decision_mode=str(payload["decision"]["mode"]),
        fee_bps=float(payload["settings"]["strategy"]["fee_rate"]) / BPS,
        period_start=pd.Timestamp(payload["period"]["start"]),
        period_end=pd.Timestamp(payload["period"]["end"]),
        n_candles=int(payload["period"]["n_candles"]),
        **_headline(payload),
        equity=_curve(payload.get("equity"), "decision"),
        buy_and_hold_equity=_curve(payload.get("equity"), "buy_and_hold"),
        report_html=html if html is not None and html.is_file() else None,
        report_json=json_path,
    )


def _horizons(payload: dict[str, Any]) -> tuple[int, ...]:
    return tuple(sorted({int(m["horizon_bars"]) for m in payload["models"]}))


def _headline(payload: dict[str, Any]) -> dict[str, Any]:
    """The traded path vs buy-and-hold, and the classification of the leading model."""
    traded, hold = payload["decision"]["trading"], payload["buy_and_hold"]
    leader = payload["leaderboard"][0]
    return {
        "total_return": traded["total_return"],
        "buy_and_hold_return": hold["total_return"],
        "sharpe": traded["sharpe"],
        "buy_and_hold_sharpe": hold["sharpe"],
        "max_drawdown": traded["max_drawdown"],
        "buy_and_hold_max_drawdown": hold["max_drawdown"],
        "n_trades": traded["n_trades"],
        "exposure": traded["exposure"],
        "roc_auc": leader["roc_auc"],
        "p_value": leader["p_value"],
        "break_even_bps": leader["break_even_bps"],
    }


def _curve(equity: dict[str, Any] | None, key: str) -> pd.Series | None:
    """One sampled curve of the JSON `equity` section (None: stored before it existed)."""
    if not equity:
        return None
    index = pd.DatetimeIndex(pd.to_datetime(equity["time"], utc=True))
    return pd.Series(equity[key], index=index, dtype="float64")
