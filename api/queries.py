"""Read-side assembly shared by routes and the dashboard: accuracy, model info, health."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from api.paper import expectation_out
from api.schemas import (
    AccuracyOut,
    AccuracyPoint,
    BacktestSummary,
    BotState,
    DecisionOut,
    FeatureOut,
    FeaturesOut,
    HealthOut,
    ModelInfoOut,
)
from api.summaries import backtest_summary, expectation, live_accuracy
from core.errors import AppError, ModelError, StorageError
from core.settings import Settings
from core.timeframes import from_epoch_ms, tick_interval_ms, to_epoch_ms
from ml.features import feature_specs
from ml.predict import feature_settings_of
from ml.registry import ModelManifest, read_manifest
from serving.models import ModelCache, ServedModel
from serving.track_record import market_expectation
from storage.db import check_connection, session_scope
from storage.repository import (
    BotRun,
    latest_backtest_for_model,
    latest_bot_run,
    resolved_predictions,
)

logger = logging.getLogger(__name__)

HEALTH_PROBE_TIMEOUT_MS = 500
"""How long the /health database probe may wait on a lock (Docker's health check gives 5 s)."""
LOST_AFTER_TICKS = 2
"""A running bot whose heartbeat is older than this many ticks is reported as lost."""
LOST_MIN_MS = 60_000


def latest_backtest(session: Any, model_id: str | None) -> BacktestSummary | None:
    """The newest backtest run that used `model_id`, summarised for that model."""
    if model_id is None:
        return None
    run = latest_backtest_for_model(session, model_id)
    return None if run is None else backtest_summary(run, model_id=model_id)


def accuracy_report(
    session: Any,
    store: ModelCache,
    *,
    symbol: str,
    timeframe: str,
    window: int,
    last: int,
    model_id: str | None,
) -> AccuracyOut:
    """Live accuracy of one model's resolved predictions vs its out-of-sample expectation.

    Without `model_id` the pair's current model is used (every model if none is current).

    Raises:
        ModelNotFoundError: `model_id` is not in the registry, or the pair is unknown.
    """
    current = store.current_or_none(symbol, timeframe)
    if current is None:
        store.check_known(symbol, timeframe)
    manifest: ModelManifest | None = current.manifest if current else None
    if model_id is not None and (manifest is None or manifest.model_id != model_id):
        manifest = read_manifest(store.root, model_id)
    chosen = manifest.model_id if manifest else None
    predictions = resolved_predictions(
        session, symbol=symbol, timeframe=timeframe, model_id=chosen, limit=last
    )
    live = live_accuracy(predictions, window=window)
    return AccuracyOut(
        symbol=symbol,
        timeframe=timeframe,
        model_id=chosen,
        window=window,
        n=live.n,
        accuracy=live.accuracy,
        accuracy_ci_low=live.accuracy_ci[0] if live.accuracy_ci else None,
        accuracy_ci_high=live.accuracy_ci[1] if live.accuracy_ci else None,
        roc_auc=live.roc_auc,
        brier=live.brier,
        expected=expectation(manifest, latest_backtest(session, chosen)),
        series=_points(live.series),
        drift=expectation_out(
            market_expectation(session, manifest, symbol=symbol, timeframe=timeframe)
        ),
    )


def _points(series: pd.DataFrame) -> list[AccuracyPoint]:
    return [
        AccuracyPoint(candle_open=stamp, rolling_accuracy=accuracy, n_in_window=int(count))
        for stamp, accuracy, count in zip(
            pd.DatetimeIndex(series.index).to_pydatetime(),
            series["rolling_accuracy"].astype(float).tolist(),
            series["n_in_window"].tolist(),
            strict=True,
        )
    ]


def features_of(model: ServedModel) -> FeaturesOut:
    """Every feature the model needs, with its description and training range."""
    manifest = model.manifest
    specs = {spec.name: spec for spec in feature_specs(feature_settings_of(model.artifact))}
    features = []
    for name in manifest.feature_names:
        spec = specs.get(name)
        low, high = manifest.feature_ranges.get(name, (None, None))
        features.append(
            FeatureOut(
                name=name,
                description=spec.description if spec else "",
                group=spec.group if spec else "other",
                train_min=low,
                train_max=high,
            )
        )
    return FeaturesOut(
        model_id=manifest.model_id,
        symbol=manifest.symbol,
        timeframe=manifest.timeframe,
        features=features,
    )


def model_info(session: Any, model: ServedModel) -> ModelInfoOut:
    """The manifest of a served model plus its latest backtest."""
    manifest = model.manifest
    return ModelInfoOut(
        model_id=manifest.model_id,
        exchange=manifest.exchange,
        symbol=manifest.symbol,
        timeframe=manifest.timeframe,
        algorithm=manifest.algorithm,
        params=manifest.params,
        threshold=manifest.threshold,
        labels=manifest.labels.model_dump(mode="json"),
        train_start=manifest.train_start,
        train_end=manifest.train_end,
        n_train_rows=manifest.n_train_rows,
        created_at=manifest.created_at,
        walk_forward=manifest.walk_forward.model_dump(mode="json")
        if manifest.walk_forward
        else None,
        validation_metrics=manifest.validation_metrics,
        feature_importance=manifest.feature_importance,
        library_versions=manifest.library_versions,
        git_commit=manifest.git_commit,
        inference="compiled" if model.scorer.is_compiled else "predict_proba",
        backtest=latest_backtest(session, manifest.model_id),
        decision=DecisionOut(**model.policy_json, validated=model.policy.validated),
    )


def health_report(
    *, engine: Any, session_factory: Any, store: ModelCache, settings: Settings, pair: Any
) -> HealthOut:
    """Probe the database and the pair's current model (the status); report the bot's state."""
    now = datetime.now(UTC)
    reasons: list[str] = []
    database = _probe_database(engine, reasons)
    model_id, model_age = _probe_model(store, pair.symbol, pair.timeframe, now, reasons)
    lost_after_ms = lost_after(settings)
    run = _probe_bot(session_factory, now, lost_after_ms, reasons) if database == "ok" else None
    tick_at = from_epoch_ms(run.last_tick_ms) if run and run.last_tick_ms else None
    tick_age = (now - tick_at).total_seconds() if tick_at else None
    bot, bot_detail = bot_state(run, tick_age, settings, lost_after_ms)
    return HealthOut(
        status="unhealthy" if reasons else "ok",
        reasons=reasons,
        database=database,
        symbol=pair.symbol,
        timeframe=pair.timeframe,
        model_id=model_id,
        model_age_seconds=model_age,
        last_tick_at=tick_at,
        last_tick_age_seconds=tick_age,
        bot=bot,
        bot_detail=bot_detail,
        detail="; ".join(reasons) if reasons else None,
    )


def lost_after(settings: Settings) -> int:
    """Milliseconds without a heartbeat after which a running bot is lost: two ticks, or
    `LOST_MIN_MS` for a bot polling every few seconds (one slow tick must not count as lost).
    """
    tick_ms = tick_interval_ms(settings.bot.timeframes, poll_seconds=settings.bot.poll_seconds)
    return max(LOST_AFTER_TICKS * tick_ms, LOST_MIN_MS)


def bot_state(
    run: BotRun | None, tick_age: float | None, settings: Settings, lost_after_ms: int
) -> tuple[BotState, str | None]:
    """The bot's state from its latest run and heartbeat age, and why when not `running`.

    The run statuses of `storage` map onto the API's words: "lost" (no heartbeat for two
    ticks, its process is gone) and a heartbeat older than `api.max_tick_age` are `stale`;
    "stopped" and "failed" are `stopped`.
    """
    if run is None:
        return "absent", "no bot run recorded; start the bot with `cryptopred live`"
    if run.status == "lost":
        return "stale", (
            f"the bot run {run.id} (host {run.host}, pid {run.pid}) is lost: no heartbeat for "
            f"more than two ticks ({lost_after_ms / 1000:.0f} s), yet it never stopped; "
            "its process was probably killed; start the bot again with `cryptopred live`"
        )
    if run.status != "running":
        return "stopped", f"the bot is {run.status} (last error: {run.last_error or 'none'})"
    if tick_age is None or tick_age > settings.api.max_tick_age.total_seconds():
        age = "never ticked" if tick_age is None else f"last tick {tick_age:.0f} s ago"
        return (
            "stale",
            f"bot heartbeat is stale: {age} (api.max_tick_age={settings.api.max_tick_age})",
        )
    return "running", None


def _probe_database(engine: Any, reasons: list[str]) -> str:
    try:
        check_connection(engine, timeout_ms=HEALTH_PROBE_TIMEOUT_MS)
    except StorageError as e:
        reasons.append(str(e))
        return "unreachable"
    return "ok"


def _probe_model(
    store: ModelCache, symbol: str, timeframe: str, now: datetime, reasons: list[str]
) -> tuple[str | None, float | None]:
    try:
        model = store.current(symbol, timeframe)
    except ModelError as e:
        reasons.append(str(e))
        return None, None
    return model.manifest.model_id, (now - model.manifest.created_at).total_seconds()


def _probe_bot(
    session_factory: Any, now: datetime, lost_after_ms: int, reasons: list[str]
) -> BotRun | None:
    try:
        with session_scope(session_factory, operation="health check", read_only=True) as session:
            run = latest_bot_run(session, now_ms=to_epoch_ms(now), lost_after_ms=lost_after_ms)
    except AppError as e:
        reasons.append(str(e))
        return None
    return run


def reports_root(settings: Settings) -> Path:
    """The resolved backtest reports directory."""
    return Path(settings.backtest.reports_dir).resolve()
