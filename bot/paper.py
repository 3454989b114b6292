"""The bot's paper account of a market: advanced in each tick's transaction, from the stored
decisions and the tick's closed candles (see `serving.paper` for the fill rules).

Each mark is a pure function of the previous mark, the candle and the decision logged at the
previous candle, so a restart, a backfill, a `kill -9` (the tick's transaction is lost whole)
or a second bot on the same database recompute the same rows, and the unique key keeps one.

Promotion rule: the account belongs to the market, not to a model. A newly promoted model
takes over the open position as it stands (no forced exit at the promotion) and its policy
decides from the state rebuilt from the logged decisions (`bot.position`), exactly as the
previous model's next decision would have. Each mark and order names the model that decided.
"""

from __future__ import annotations

import logging

import pandas as pd

from bot.deps import BotDeps
from bot.notify import DriftAlarm
from core.timeframes import from_epoch_ms, timeframe_to_ms
from data.schema import index_to_epoch_ms
from ml.registry import ModelManifest, ReturnBand
from serving.expectation import ACCURACY_WINDOW, check_expectation
from serving.paper import Market, PaperCandle, PaperCosts, advance_paper
from storage.db import DbSession
from storage.paper import insert_paper, last_paper_mark, list_paper_marks, market_decisions
from storage.repository import resolved_predictions

logger = logging.getLogger(__name__)


def candles_of(frame: pd.DataFrame) -> list[PaperCandle]:
    """The closed candles of a fetched frame as paper candles, oldest first."""
    open_ms = index_to_epoch_ms(pd.DatetimeIndex(frame.index)).tolist()
    prices = (frame[column].tolist() for column in ("open", "high", "low", "close"))
    return [
        PaperCandle(int(ms), float(o), float(h), float(lo), float(c))
        for ms, o, h, lo, c in zip(open_ms, *prices, strict=True)
    ]


def record_paper(
    session: DbSession, *, market: Market, candles: pd.DataFrame, costs: PaperCosts
) -> int:
    """Mark the market's paper account at every fetched candle after its newest mark, up to
    the newest logged decision; the account opens at the first decision of the window.

    Returns:
        How many marks were new (0 when another bot wrote them first).
    """
    bars = candles_of(candles)
    if not bars:
        return 0
    key = {"exchange": market.exchange, "symbol": market.symbol, "timeframe": market.timeframe}
    last = last_paper_mark(session, **key)
    decisions = market_decisions(session, **key, from_ms=bars[0].open_ms, to_ms=bars[-1].open_ms)
    if not decisions:
        return 0
    start_ms = decisions[0].candle_open_ms if last is None else last.candle_open_ms + 1
    todo = [bar for bar in bars if start_ms <= bar.open_ms <= decisions[-1].candle_open_ms]
    if last is not None and todo:
        _warn_gap(market, last.candle_open_ms, todo[0].open_ms)
    marks, orders = advance_paper(
        last,
        todo,
        {decision.candle_open_ms: decision for decision in decisions},
        market=market,
        costs=costs,
    )
    return insert_paper(session, marks, orders)


def _warn_gap(market: Market, last_ms: int, next_ms: int) -> None:
    step_ms = timeframe_to_ms(market.timeframe)
    if next_ms != last_ms + step_ms:
        logger.warning(
            "%s %s paper account: no candles between %s and %s (an exchange gap or a bot "
            "down longer than bot.max_backfill_bars); the position is held through them",
            market.symbol,
            market.timeframe,
            f"{from_epoch_ms(last_ms):%Y-%m-%d %H:%M}Z",
            f"{from_epoch_ms(next_ms):%Y-%m-%d %H:%M}Z",
        )


def costs_of(deps: BotDeps) -> PaperCosts:
    """The paper account's costs: the backtest's (`strategy` settings)."""
    return PaperCosts.from_settings(deps.settings.strategy)


def drift_change(
    session: DbSession,
    manifest: ModelManifest,
    *,
    market: Market,
    new_marks: int,
    new_outcomes: int,
) -> DriftAlarm | None:
    """A drift alarm raised or cleared by this tick's new marks and outcomes, else None.

    The check before the tick is the same check without them, so whichever bot wrote the
    marks notifies once (a bot that lost the race wrote none), also after a restart.
    """
    if new_marks <= 0 and new_outcomes <= 0:
        return None
    longest = max((band.window_bars for band in _bands(manifest)), default=0)
    marks = list_paper_marks(
        session, symbol=market.symbol, timeframe=market.timeframe, limit=longest + 1 + new_marks
    )
    predictions = resolved_predictions(
        session,
        symbol=market.symbol,
        timeframe=market.timeframe,
        model_id=manifest.model_id,
        limit=ACCURACY_WINDOW + new_outcomes,
    )
    equity = [mark.equity for mark in marks]
    outcomes = [bool(p.is_correct) for p in predictions]
    now = check_expectation(manifest, equity=equity, outcomes=outcomes)
    before = check_expectation(
        manifest,
        equity=equity[: len(equity) - new_marks],
        outcomes=outcomes[: len(outcomes) - new_outcomes],
    )
    if now.alarm == before.alarm or not marks:
        return None
    if now.alarm:
        logger.warning("%s %s: DRIFT ALARM: %s", market.symbol, market.timeframe, now.reasons)
    return DriftAlarm(
        exchange=market.exchange,
        symbol=market.symbol,
        timeframe=market.timeframe,
        candle_open_ms=marks[-1].candle_open_ms,
        model_id=manifest.model_id,
        raised=now.alarm,
        reasons=now.reasons,
    )


def _bands(manifest: ModelManifest) -> tuple[ReturnBand, ...]:
    return manifest.decision.return_bands if manifest.decision else ()
