"""The versioned JSON report of a backtest run (documented key by key in REPORT_SCHEMA.md)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from backtests.conclusions import model_verdict, verdict_lines
from backtests.curves import equity_payload
from backtests.decision_report import choices_payload, decision_payload
from backtests.headline import headline
from backtests.run import BacktestResult, ModelBacktest, Segment
from backtests.trade_stats import EXIT_REASONS, trade_records, trade_statistics
from strategy.costs import to_bps

REPORT_SCHEMA_VERSION = 2
"""Bump when a key of the JSON report changes meaning or disappears (see REPORT_SCHEMA.md)."""
HTML_NAME = "report.html"
JSON_NAME = "report.json"


def json_ready(value: Any) -> Any:
    """Plain JSON values: NaN/inf -> None, numpy scalars -> Python, timestamps -> ISO-8601."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):  # pd.Timestamp included
        return value.isoformat()
    return value


def _period(start: pd.Timestamp, end: pd.Timestamp, n: int) -> dict[str, Any]:
    return {"start": start.isoformat(), "end": end.isoformat(), "n_candles": n}


def _segment_payload(segment: Segment) -> dict[str, Any]:
    return {
        "number": segment.number,
        "label": segment.label,
        "start": segment.start.isoformat(),
        "end": segment.end.isoformat(),
        "classification": segment.classification.to_dict() if segment.classification else None,
        "trading": segment.trading.to_dict(),
    }


def _model_payload(model: ModelBacktest, fee_bps: float, timeframe: str) -> dict[str, Any]:
    fees = model.fee_sensitivity
    importances = model.importances.reset_index()
    importances.columns = ["feature", *importances.columns[1:]]
    train = model.train_range
    return {
        "algorithm": model.algorithm,
        "model_id": model.model_id,
        "name": model.name,
        "horizon_bars": model.horizon_bars,
        "decision_mode": model.decision.mode,
        "choices": choices_payload(model.decision),
        "in_sample": model.in_sample,
        "in_sample_bars": model.in_sample_bars,
        "train_range": None if train is None else {"start": train[0], "end": train[1]},
        "classification": model.classification.to_dict(),
        "baselines": model.baselines.to_dict(),
        "significance": model.significance.to_dict(),
        "previous_return_auc": model.previous_return_auc,
        "trading": model.trading.to_dict(),
        "trade_statistics": trade_statistics(model.run.trades, timeframe=timeframe).to_dict(),
        "excess_return": model.excess_return,
        "segments": [_segment_payload(segment) for segment in model.segments],
        "fee_sensitivity": {
            "engine": fees.engine,
            "break_even_bps": fees.break_even_bps,
            "status": fees.status,
            "note": fees.note,
            "points": [
                {
                    "fee_bps": p.fee_bps,
                    "total_return": p.total_return,
                    "sharpe": p.sharpe,
                    "n_trades": p.n_trades,
                    "fees_paid": p.fees_paid,
                }
                for p in fees.points
            ],
        },
        "engine_gap": model.engine_gap,
        "feature_importance": importances.to_dict(orient="records"),
        "verdict": model_verdict(model, fee_bps=fee_bps),
        "fit_seconds": model.fit_seconds,
        "backtest_seconds": model.backtest_seconds,
    }


def leaderboard_row(model: ModelBacktest) -> dict[str, Any]:
    """One model's leaderboard entry (without its rank): classification and trading together."""
    return {
        "algorithm": model.algorithm,
        "model_id": model.model_id,
        "name": model.name,
        "accuracy": model.classification.accuracy,
        "roc_auc": model.classification.roc_auc,
        "p_value": model.significance.p_value,
        "total_return": model.trading.total_return,
        "buy_and_hold_return": model.trading.buy_and_hold_return,
        "excess_return": model.excess_return,
        "sharpe": model.trading.sharpe,
        "max_drawdown": model.trading.max_drawdown,
        "n_trades": model.trading.n_trades,
        "break_even_bps": model.fee_sensitivity.break_even_bps,
    }


def leaderboard_rows(result: BacktestResult) -> list[dict[str, Any]]:
    """One row per model (best strategy return first): classification and trading together."""
    return [
        {"rank": rank, **leaderboard_row(model)}
        for rank, model in enumerate(result.leaderboard(), start=1)
    ]


def trades_payload(result: BacktestResult) -> dict[str, Any]:
    """The `trades` section: every trade of the headline path and its statistics."""
    trades = result.selection.run.trades
    return {
        "source": result.selection.source,
        "statistics": trade_statistics(trades, timeframe=result.timeframe).to_dict(),
        "exit_reasons": dict(EXIT_REASONS),
        "rows": trade_records(trades),
    }


def report_payload(result: BacktestResult) -> dict[str, Any]:
    """The JSON report (schema `REPORT_SCHEMA_VERSION`, documented in REPORT_SCHEMA.md)."""
    settings = result.settings
    fee_bps = to_bps(settings.strategy.fee_rate)
    payload = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run_id": result.run_id,
        "created_at": result.created_at.isoformat(),
        "config_hash": result.config_hash,
        "mode": result.mode,
        "symbol": result.symbol,
        "timeframe": result.timeframe,
        "data": _period(result.data_start, result.data_end, result.n_candles),
        "data_source": result.data_source,
        "data_sample": result.is_sample,
        "period": _period(result.period_start, result.period_end, len(result.candles)),
        "settings": {
            "strategy": settings.strategy.model_dump(mode="json"),
            "decision": settings.decision.model_dump(mode="json"),
            "labels": settings.ml.labels.model_dump(mode="json"),
            "walk_forward": settings.ml.walk_forward.model_dump(mode="json"),
            "fee_sensitivity_bps": list(settings.backtest.fee_sensitivity_bps),
            "start": settings.backtest.start,
            "end": settings.backtest.end,
        },
        "buy_and_hold": result.buy_and_hold.to_dict(),
        "headline": headline(result).to_dict(),
        "decision": decision_payload(result),
        "trades": trades_payload(result),
        "equity": equity_payload(result),
        "models": [_model_payload(m, fee_bps, result.timeframe) for m in result.models],
        "leaderboard": leaderboard_rows(result),
        "verdict": verdict_lines(result),
        "files": {"html": HTML_NAME, "json": JSON_NAME},
        "seconds": result.seconds,
    }
    return dict(json_ready(payload))
