"""Example payloads shown in the OpenAPI document (one per request and response model)."""

from __future__ import annotations

from typing import Any

FEATURES: dict[str, Any] = {"log_return_1": 0.0012, "rsi": 55.3, "volatility_24": 0.0081}
TS = "2024-05-01T12:00:00Z"

RULE: dict[str, Any] = {
    "entry_threshold": 0.55,
    "exit_threshold": 0.45,
    "min_hold_bars": 12,
    "cooldown_bars": 24,
    "sizing": "fixed",
    "edge_scale": 5.0,
    "allow_short": False,
    "short_entry_threshold": 0.45,
    "short_exit_threshold": 0.5,
    "stay_flat": False,
}

POLICY: dict[str, Any] = {
    "source": "manifest",
    "description": (
        "long at p_up >= 0.55, exit below 0.45, hold >= 12 bars, cooldown 24 bars, fixed size"
    ),
    "rule": RULE,
}

LOGGED: dict[str, Any] = {
    "id": 42,
    "exchange": "binance",
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "candle_open": "2024-05-01T11:00:00Z",
    "target_close": "2024-05-01T13:00:00Z",
    "horizon_bars": 1,
    "proba_up": 0.56,
    "direction": "UP",
    "signal": 1,
    "threshold": 0.5,
    "model_id": "BTC_USDT-1h-lightgbm-20240501T0000Z",
    "created_at": "2024-05-01T12:00:05Z",
    "is_backfill": False,
    "actual_return": 0.0031,
    "actual_direction": "UP",
    "is_correct": True,
    "resolved_at": "2024-05-01T13:00:04Z",
    "action": "LONG",
    "size": 1.0,
    "policy_source": "manifest",
}

PREDICT_REQUEST: dict[str, Any] = {"features": FEATURES}

BATCH_REQUEST: dict[str, Any] = {"rows": [FEATURES, FEATURES]}

CANDLES_REQUEST: dict[str, Any] = {
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "candles": [
        [1714561200000, 60110.5, 60300.0, 59950.1, 60250.2, 812.4],
        [1714564800000, 60250.2, 60410.9, 60180.0, 60390.7, 640.9],
    ],
}

PREDICTION_OUT: dict[str, Any] = {
    "direction": "UP",
    "proba_up": 0.5731,
    "model_id": "BTC_USDT-1h-lightgbm-20240501T0000Z",
    "threshold": 0.5,
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "action": "LONG",
    "size": 1.0,
    "policy": POLICY,
}

BATCH_PREDICTION_OUT: dict[str, Any] = {
    "model_id": "BTC_USDT-1h-lightgbm-20240501T0000Z",
    "threshold": 0.5,
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "count": 2,
    "policy": POLICY,
    "predictions": [
        {"direction": "UP", "proba_up": 0.57, "action": "LONG", "size": 1.0},
        {"direction": "UP", "proba_up": 0.52, "action": "FLAT", "size": 0.0},
    ],
}

CANDLE_PREDICTION_OUT: dict[str, Any] = {
    "direction": "DOWN",
    "proba_up": 0.4812,
    "model_id": "BTC_USDT-1h-lightgbm-20240501T0000Z",
    "threshold": 0.5,
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "action": "LONG",
    "size": 1.0,
    "policy": POLICY,
    "candle_open": "2024-05-01T11:00:00Z",
    "candle_close": TS,
    "horizon_bars": 1,
    "candles_used": 481,
    "dropped_forming_candle": False,
    "bars_held": 3,
}

PREDICTION_PAGE_OUT: dict[str, Any] = {"items": [LOGGED], "next_cursor": "MTcxNDU2"}

ACCURACY_OUT: dict[str, Any] = {
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "model_id": "BTC_USDT-1h-lightgbm-20240501T0000Z",
    "window": 100,
    "n": 240,
    "accuracy": 0.521,
    "accuracy_ci_low": 0.458,
    "accuracy_ci_high": 0.583,
    "roc_auc": 0.534,
    "brier": 0.2491,
    "expected": {
        "walk_forward_accuracy": 0.517,
        "walk_forward_roc_auc": 0.529,
        "backtest_id": "20240501T0000Z-1a2b3c",
        "backtest_accuracy": 0.515,
    },
    "series": [{"candle_open": TS, "rolling_accuracy": 0.53, "n_in_window": 100}],
}

FEATURES_OUT: dict[str, Any] = {
    "model_id": "BTC_USDT-1h-lightgbm-20240501T0000Z",
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "features": [
        {
            "name": "rsi",
            "description": "RSI(14), 0..100",
            "group": "momentum",
            "train_min": 8.1,
            "train_max": 93.4,
        }
    ],
}

MODEL_INFO_OUT: dict[str, Any] = {
    "model_id": "BTC_USDT-1h-lightgbm-20240501T0000Z",
    "exchange": "binance",
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "algorithm": "lightgbm",
    "params": {"n_estimators": 300, "learning_rate": 0.03},
    "threshold": 0.5,
    "labels": {"method": "direction", "horizon_bars": 1},
    "train_start": "2021-01-01T00:00:00Z",
    "train_end": "2024-05-01T00:00:00Z",
    "n_train_rows": 8760,
    "created_at": "2024-05-01T00:10:00Z",
    "walk_forward": {"metrics": {"accuracy": 0.517, "roc_auc": 0.529}},
    "validation_metrics": None,
    "feature_importance": {"rsi": 0.012, "log_return_1": 0.009},
    "library_versions": {"lightgbm": "4.7.0"},
    "git_commit": "d23a105",
    "inference": "compiled",
    "backtest": None,
    "decision": {
        **POLICY,
        "validated": {
            "policy": RULE,
            "chosen_by": "nested walk-forward, net log growth",
            "n_candidates": 37,
            "nested_net_return": 0.42,
            "nested_buy_and_hold_return": 0.55,
            "deflated_sharpe": 0.61,
            "probability_of_overfitting": 0.31,
        },
    },
}

PROMOTE_OUT: dict[str, Any] = {
    "model_id": "BTC_USDT-1h-lightgbm-20240501T0000Z",
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "previous_model_id": "BTC_USDT-1h-lightgbm-20240401T0000Z",
}

BACKTEST_LIST_OUT: dict[str, Any] = {
    "items": [
        {
            "id": "20240501T0000Z-1a2b3c",
            "created_at": TS,
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "models": ["lightgbm"],
            "period_start": "2023-01-01T00:00:00Z",
            "period_end": "2024-05-01T00:00:00Z",
            "model_ids": {"lightgbm": "BTC_USDT-1h-lightgbm-20240501T0000Z"},
            "report_url": "/reports/20240501T0000Z-1a2b3c/report.html",
            "classification": {"accuracy": 0.515},
            "trading": {"total_return": 0.12, "sharpe": 0.8},
        }
    ]
}

BACKTEST_OUT: dict[str, Any] = {
    "id": "20240501T0000Z-1a2b3c",
    "created_at": TS,
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "models": ["lightgbm"],
    "period_start": "2023-01-01T00:00:00Z",
    "period_end": "2024-05-01T00:00:00Z",
    "model_ids": {},
    "report_url": None,
    "classification": {},
    "trading": {},
    "config_hash": "1a2b3c4d",
    "metrics": {"lightgbm": {"trading": {"total_return": 0.12}}},
}

HEALTH_OUT: dict[str, Any] = {
    "status": "ok",
    "reasons": [],
    "database": "ok",
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "model_id": "BTC_USDT-1h-lightgbm-20240501T0000Z",
    "model_age_seconds": 86400.0,
    "last_tick_at": TS,
    "last_tick_age_seconds": 65.2,
    "bot": "running",
}

ERROR_OUT: dict[str, Any] = {"detail": "features do not match: missing ['rsi']"}
