"""One market in one tick: plan from the database, fetch closed candles, predict, log, resolve."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from bot.deps import BotDeps, tick_time_ms
from bot.notify import DriftAlarm, SignalChange
from bot.outcomes import outcomes_from_candles, realised_labels
from bot.paper import costs_of, drift_change, record_paper
from bot.position import state_from_rows
from core.errors import ConfigError, TemporaryExchangeError
from core.settings import BotSettings
from core.timeframes import from_epoch_ms, last_closed_candle_open, timeframe_to_ms, to_epoch_ms
from data.schema import index_to_epoch_ms
from ml.decision import LivePolicy, PolicyState, history_bars_needed, positions_from_proba
from ml.predict import Prediction, predict_many, required_candles
from ml.registry import ModelArtifact
from serving.paper import Market
from storage.db import session_scope
from storage.records import NewPrediction, encode_cursor
from storage.repository import (
    insert_predictions,
    last_prediction_open_ms,
    list_predictions,
    resolve_predictions,
    unresolved_predictions,
)

logger = logging.getLogger(__name__)

WARMUP_MARGIN_BARS = 24
"""Extra candles fetched so that a few exchange gaps cannot shorten the feature warm-up."""
MAX_RESOLVE_LOOKBACK_BARS = 2000
"""Unresolved predictions older than this many candles are no longer fetched for."""
CLOSED_CANDLE_RETRY_SECONDS = 1.0
"""First wait when the exchange has not published the just-closed candle (grows linearly)."""


@dataclass(frozen=True, slots=True)
class MarketResult:
    """What one tick produced for one market."""

    symbol: str
    timeframe: str
    step_ms: int
    predictions: tuple[NewPrediction, ...] = ()
    written: int = 0
    resolved: int = 0
    signal_change: SignalChange | None = None
    drift: DriftAlarm | None = None


@dataclass(frozen=True, slots=True)
class MarketPlan:
    """What a tick must do for one market, read from the database before fetching.

    `state` is where the decision policy stands before the first target: rebuilt from the
    market's logged predictions, so minimum holds, cooldowns and entry sizes carry over
    between ticks and across restarts.
    """

    model_id: str
    first_ms: int
    last_closed_ms: int
    state: PolicyState
    oldest_unresolved_ms: int | None

    @property
    def has_targets(self) -> bool:
        """True when at least one closed candle still lacks a prediction."""
        return self.first_ms <= self.last_closed_ms

    def fetch_since_ms(self, *, warmup_bars: int, step_ms: int) -> int:
        """Open time of the first candle to fetch: the warm-up of the first target, or older
        when an unresolved prediction needs its candle."""
        since_ms = self.first_ms - (warmup_bars - 1 + WARMUP_MARGIN_BARS) * step_ms
        if self.oldest_unresolved_ms is not None:
            return min(since_ms, self.oldest_unresolved_ms)
        return since_ms


def warmup_bars_for(bot: BotSettings, artifact: ModelArtifact) -> int:
    """Candles of history per prediction: `bot.warmup_bars`, or the model's own warm-up.

    Raises:
        ConfigError: `bot.warmup_bars` is smaller than the model needs (live predictions would
            then differ from the backtest's).
    """
    required = required_candles(artifact)
    if bot.warmup_bars is None:
        return required
    if bot.warmup_bars < required:
        raise ConfigError(
            f"bot.warmup_bars ({bot.warmup_bars}) is below the {required} candles model "
            f"{artifact.model_id} needs for its features; raise it or set it to null"
        )
    return bot.warmup_bars


def predict_market(
    deps: BotDeps, symbol: str, timeframe: str, *, now: datetime, started: float
) -> MarketResult:
    """Predict every closed candle since the last logged one, then resolve earlier outcomes."""
    served = deps.models.current(symbol, timeframe, now=now)
    artifact, policy = served.artifact, served.policy
    warmup = warmup_bars_for(deps.settings.bot, artifact)
    step_ms = timeframe_to_ms(timeframe)
    plan = make_plan(deps, artifact, symbol, timeframe, now=now, policy=policy)
    if not plan.has_targets:
        # Nothing new closed since the last tick. Outcomes are resolved when the next candle
        # closes (a target closes together with a new candle), so an idle poll fetches nothing.
        return MarketResult(symbol, timeframe, step_ms)
    candles = fetch_closed_candles(
        deps,
        symbol,
        timeframe,
        since_ms=plan.fetch_since_ms(warmup_bars=warmup, step_ms=step_ms),
        last_closed_ms=plan.last_closed_ms,
    )
    rows = predict_rows(deps, artifact, candles, plan, warmup_bars=warmup, now=now, policy=policy)
    rows = _stamp(deps, rows, now=now, started=started, step_ms=step_ms)
    key = {"exchange": deps.source.exchange_id, "symbol": symbol, "timeframe": timeframe}
    resolved_ms = tick_time_ms(deps, now, started)
    operation = f"log {symbol} {timeframe} predictions"
    with session_scope(deps.session_factory, operation=operation) as session:
        written = insert_predictions(session, rows)
        # after the insert, so backfilled rows whose target has closed are resolved at once
        pending = unresolved_predictions(session, **key, target_close_until_ms=resolved_ms)
        outcomes = outcomes_from_candles(
            pending,
            candles,
            step_ms=step_ms,
            resolved_ms=resolved_ms,
            labels=realised_labels(artifact, candles),
        )
        resolved = resolve_predictions(session, outcomes)
        marks = record_paper(session, market=Market(**key), candles=candles, costs=costs_of(deps))
        drift = drift_change(
            session, artifact.manifest, market=Market(**key), new_marks=marks, new_outcomes=resolved
        )
    change = _signal_change(rows, plan, step_ms) if written else None
    return MarketResult(symbol, timeframe, step_ms, tuple(rows), written, resolved, change, drift)


def make_plan(
    deps: BotDeps,
    artifact: ModelArtifact,
    symbol: str,
    timeframe: str,
    *,
    now: datetime,
    policy: LivePolicy,
) -> MarketPlan:
    """Which candles to predict (since the last logged one, capped by `max_backfill_bars`),
    the oldest outcome still to resolve and the policy's state before the first target."""
    step_ms = timeframe_to_ms(timeframe)
    last_closed_ms = to_epoch_ms(last_closed_candle_open(now, timeframe))
    key = {"exchange": deps.source.exchange_id, "symbol": symbol, "timeframe": timeframe}
    operation = f"plan {symbol} {timeframe}"
    with session_scope(deps.session_factory, operation=operation, read_only=True) as session:
        last_ms = last_prediction_open_ms(session, **key, model_id=artifact.model_id)
        if last_ms is None:  # a newly promoted model picks up where the previous one stopped
            newest = list_predictions(session, symbol=symbol, timeframe=timeframe, limit=1).items
            last_ms = newest[0].candle_open_ms if newest else None
        first_ms = first_target_ms(
            last_ms,
            last_closed_ms=last_closed_ms,
            step_ms=step_ms,
            max_backfill_bars=deps.settings.bot.max_backfill_bars,
            market=f"{symbol} {timeframe}",
        )
        unresolved = unresolved_predictions(session, **key, target_close_until_ms=to_epoch_ms(now))
        # The keyset cursor (first_ms, 0) selects exactly the candles opened before first_ms.
        # Twice the decisions needed, in case two models logged the same candles.
        earlier = list_predictions(
            session,
            symbol=symbol,
            timeframe=timeframe,
            limit=2 * history_bars_needed(policy.policy),
            cursor=encode_cursor(first_ms, 0),
        ).items
    lookback_ms = last_closed_ms - MAX_RESOLVE_LOOKBACK_BARS * step_ms
    oldest = min(
        (row.candle_open_ms for row in unresolved if row.candle_open_ms >= lookback_ms),
        default=None,
    )
    # The policy continues from the market's logged decisions (any model), as the backtest
    # continues from the previous candle.
    state = state_from_rows(earlier, policy)
    return MarketPlan(artifact.model_id, first_ms, last_closed_ms, state, oldest)


def first_target_ms(
    last_ms: int | None, *, last_closed_ms: int, step_ms: int, max_backfill_bars: int, market: str
) -> int:
    """Open time of the first candle to predict: the one after the last logged prediction, at
    most `max_backfill_bars` before the newest closed candle; the newest alone on a first start.

    >>> first_target_ms(None, last_closed_ms=100, step_ms=10, max_backfill_bars=3, market="m")
    100
    >>> first_target_ms(70, last_closed_ms=100, step_ms=10, max_backfill_bars=3, market="m")
    80
    """
    if last_ms is None:
        return last_closed_ms
    first_ms = last_ms + step_ms
    floor_ms = last_closed_ms - max_backfill_bars * step_ms
    if first_ms < floor_ms:
        logger.warning(
            "%s: %d closed candles since %s are older than bot.max_backfill_bars (%d); "
            "they are not predicted",
            market,
            (floor_ms - first_ms) // step_ms,
            f"{from_epoch_ms(first_ms):%Y-%m-%d %H:%M}Z",
            max_backfill_bars,
        )
        return floor_ms
    return first_ms


def fetch_closed_candles(
    deps: BotDeps, symbol: str, timeframe: str, *, since_ms: int, last_closed_ms: int
) -> pd.DataFrame:
    """Closed candles from `since_ms` up to the candle closed at the tick's `now`.

    If the exchange has not published that candle yet, retry `bot.closed_candle_retries` times
    with short, growing waits.

    Raises:
        TemporaryExchangeError: the newest closed candle never appeared.
    """
    retries = deps.settings.bot.closed_candle_retries
    newest: pd.Timestamp | None = None
    for attempt in range(retries + 1):
        candles = deps.source.fetch_candles(symbol, timeframe, since=from_epoch_ms(since_ms))
        open_ms = index_to_epoch_ms(pd.DatetimeIndex(candles.index))
        candles = candles[open_ms <= last_closed_ms]  # never a candle still forming at `now`
        if bool((open_ms == last_closed_ms).any()):
            return candles
        newest = candles.index[-1] if len(candles) else None
        if attempt < retries:
            wait = CLOSED_CANDLE_RETRY_SECONDS * (attempt + 1)
            logger.info(
                "%s %s: the candle opened %s is not published yet (newest %s); retry %d/%d in "
                "%.1f s",
                symbol,
                timeframe,
                f"{from_epoch_ms(last_closed_ms):%Y-%m-%d %H:%M}Z",
                "none" if newest is None else f"{newest:%Y-%m-%d %H:%M}Z",
                attempt + 1,
                retries,
                wait,
            )
            deps.sleep(wait)
    raise TemporaryExchangeError(
        f"the exchange has not published the candle opened "
        f"{from_epoch_ms(last_closed_ms):%Y-%m-%d %H:%M}Z after {retries} retries (newest "
        f"{'none' if newest is None else f'{newest:%Y-%m-%d %H:%M}Z'}); raise "
        "bot.schedule_offset_seconds or bot.closed_candle_retries if this repeats"
    )


def predict_rows(
    deps: BotDeps,
    artifact: ModelArtifact,
    candles: pd.DataFrame,
    plan: MarketPlan,
    *,
    warmup_bars: int,
    now: datetime,
    policy: LivePolicy,
) -> list[NewPrediction]:
    """One prediction per closed candle in [plan.first_ms, plan.last_closed_ms].

    The records come from `ml.predict.predict_many` (the records `predict_latest` makes)
    over the fetched window; every target has at least `warmup_bars` candles of history in
    the window, so its features equal the full-history ones (see `ml.features.warmup_bars`).
    `positions_from_proba` turns the targets' probabilities into the policy's actions,
    continuing from `plan.state` as the backtest continues from the previous candle.
    Created time and latency are set later.
    """
    open_ms = index_to_epoch_ms(pd.DatetimeIndex(candles.index))
    targets = np.flatnonzero((open_ms >= plan.first_ms) & (open_ms <= plan.last_closed_ms))
    _warn_missing(artifact, plan, len(targets), candles)
    ready = targets[targets >= warmup_bars - 1]
    since = candles.index[ready[0]] if len(ready) else None
    records = predict_many(artifact, candles, since=since) if since is not None else ()
    _warn_unpredicted(candles, targets, records, artifact=artifact)
    positions = positions_from_proba(
        [record.proba_up for record in records], policy.policy, state=plan.state
    )
    return [
        new_prediction(
            record,
            exchange=deps.source.exchange_id,
            side=side,
            size=size,
            policy_source=policy.source,
            is_backfill=to_epoch_ms(record.candle_open) != plan.last_closed_ms,
            created_ms=to_epoch_ms(now),
        )
        for record, side, size in zip(
            records, positions.side.tolist(), positions.size.tolist(), strict=True
        )
    ]


def new_prediction(
    record: Prediction,
    *,
    exchange: str,
    side: int,
    size: float,
    policy_source: str,
    is_backfill: bool,
    created_ms: int,
) -> NewPrediction:
    """The database row of a `Prediction` and the policy's action on it."""
    candle_ms = to_epoch_ms(record.candle_open)
    step_ms = to_epoch_ms(record.candle_close) - candle_ms
    return NewPrediction(
        exchange=exchange,
        symbol=record.symbol,
        timeframe=record.timeframe,
        candle_open_ms=candle_ms,
        target_close_ms=candle_ms + (record.horizon_bars + 1) * step_ms,
        horizon_bars=record.horizon_bars,
        proba_up=record.proba_up,
        direction=record.direction,
        signal=int(side),  # type: ignore[arg-type]
        size=float(size),
        policy_source=policy_source,
        threshold=record.threshold,
        model_id=record.model_id,
        created_ms=created_ms,
        latency_ms=0.0,
        is_backfill=is_backfill,
    )


def _warn_unpredicted(
    candles: pd.DataFrame,
    targets: npt.NDArray[np.intp],
    records: tuple[Prediction, ...],
    *,
    artifact: ModelArtifact,
) -> None:
    """Log each target candle left without a record (short or unclean feature history)."""
    predicted = {record.candle_open for record in records}
    for i in targets.tolist():
        stamp = candles.index[i]
        if stamp not in predicted:
            logger.warning(
                "%s %s: not enough clean history before %s (%d candles); not predicted",
                artifact.manifest.symbol,
                artifact.manifest.timeframe,
                f"{stamp:%Y-%m-%d %H:%M}Z",
                i + 1,
            )


def _warn_missing(
    artifact: ModelArtifact, plan: MarketPlan, found: int, candles: pd.DataFrame
) -> None:
    step_ms = timeframe_to_ms(artifact.manifest.timeframe)
    expected = (plan.last_closed_ms - plan.first_ms) // step_ms + 1
    if found < expected:
        logger.warning(
            "%s %s: %d of %d closed candles since %s are missing on the exchange (a gap in its "
            "data); they cannot be predicted",
            artifact.manifest.symbol,
            artifact.manifest.timeframe,
            expected - found,
            expected,
            f"{from_epoch_ms(plan.first_ms):%Y-%m-%d %H:%M}Z",
        )


def _stamp(
    deps: BotDeps, rows: list[NewPrediction], *, now: datetime, started: float, step_ms: int
) -> list[NewPrediction]:
    """Set the created time (tick clock) and the latency from each candle's close."""
    created_ms = tick_time_ms(deps, now, started)
    return [
        replace(
            row,
            created_ms=created_ms,
            latency_ms=float(created_ms - row.candle_open_ms - step_ms),
        )
        for row in rows
    ]


def _signal_change(
    rows: list[NewPrediction], plan: MarketPlan, step_ms: int
) -> SignalChange | None:
    if not rows or rows[-1].signal == plan.state.side:
        return None
    newest = rows[-1]
    return SignalChange(
        exchange=newest.exchange,
        symbol=newest.symbol,
        timeframe=newest.timeframe,
        candle_open_ms=newest.candle_open_ms,
        candle_close_ms=newest.candle_open_ms + step_ms,
        proba_up=newest.proba_up,
        direction=newest.direction,
        previous_signal=plan.state.side,
        previous_size=plan.state.size,
        signal=newest.signal,
        size=newest.size or 0.0,
        model_id=newest.model_id,
        policy_source=newest.policy_source or "",
    )
