"""`run_once(deps, now)`: one bot tick over every market: predict, log, resolve, heartbeat."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.deps import BotDeps, ms_since
from bot.market import MarketResult, predict_market
from core.errors import ConfigError, DataError, ExchangeError, ModelError
from core.timeframes import ensure_utc, from_epoch_ms
from ml.decision import ACTIONS
from storage.db import session_scope
from storage.records import NewPrediction
from storage.repository import record_tick

logger = logging.getLogger(__name__)

ErrorKind = Literal["temporary", "data", "other"]


@dataclass(frozen=True, slots=True)
class MarketReport:
    """What one tick did for one (symbol, timeframe)."""

    symbol: str
    timeframe: str
    predictions: tuple[NewPrediction, ...] = ()
    written: int = 0
    resolved: int = 0
    error_kind: ErrorKind | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TickReport:
    """The outcome of one `run_once`."""

    now: datetime
    markets: tuple[MarketReport, ...]
    duration_ms: float

    @property
    def predictions(self) -> tuple[NewPrediction, ...]:
        """Every prediction made by the tick, market by market."""
        return tuple(row for market in self.markets for row in market.predictions)

    @property
    def written(self) -> int:
        """New prediction rows committed by this tick."""
        return sum(market.written for market in self.markets)

    @property
    def resolved(self) -> int:
        """Earlier predictions whose outcome this tick recorded."""
        return sum(market.resolved for market in self.markets)

    def errors(self, kind: ErrorKind) -> int:
        """Markets skipped because of an error of `kind`."""
        return sum(market.error_kind == kind for market in self.markets)

    @property
    def has_errors(self) -> bool:
        """True when at least one market was skipped."""
        return any(market.error_kind is not None for market in self.markets)

    @property
    def last_error(self) -> str | None:
        """The message of the last error of the tick, if any."""
        errors = [market.error for market in self.markets if market.error]
        return errors[-1] if errors else None


def run_once(
    deps: BotDeps, now: datetime, *, timeframes: Sequence[str] | None = None
) -> TickReport:
    """One tick: every configured (symbol, timeframe), then one heartbeat row.

    Each market is independent: exchange and data errors skip that market (its candles are
    backfilled by a later tick), unexpected errors are logged with a traceback and counted;
    the traceback of a fatal (model or config) error is logged at DEBUG only.

    Raises:
        ModelError: a market has no usable model (stop the bot).
        ConfigError: the configuration cannot work for a market (stop the bot).
        StorageError: the heartbeat could not be written.
    """
    now = ensure_utc(now)
    started = deps.elapsed()
    bot = deps.settings.bot
    selected = [tf for tf in bot.timeframes if timeframes is None or tf in timeframes]
    markets = tuple(
        _run_market_safely(deps, symbol, timeframe, now, started)
        for timeframe in selected
        for symbol in bot.symbols
    )
    report = TickReport(now=now, markets=markets, duration_ms=ms_since(deps, started))
    if deps.run_id is not None:
        _record_heartbeat(deps, report, deps.run_id)
    logger.debug(
        "Tick at %s: %d written, %d resolved, %d skipped, %.0f ms",
        f"{now:%Y-%m-%d %H:%M:%S}Z",
        report.written,
        report.resolved,
        sum(report.errors(kind) for kind in ("temporary", "data", "other")),
        report.duration_ms,
    )
    return report


def _run_market_safely(
    deps: BotDeps, symbol: str, timeframe: str, now: datetime, started: float
) -> MarketReport:
    """The per-market error policy of STYLE.md B5."""
    try:
        result = predict_market(deps, symbol, timeframe, now=now, started=started)
    except (ModelError, ConfigError) as e:
        # expected and fatal: one line (the runner logs the message); the traceback is DEBUG
        logger.error(
            "Stopping the bot: %s %s cannot be predicted (%s)",
            symbol,
            timeframe,
            type(e).__name__,
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )
        raise
    except (ExchangeError, DataError) as e:
        kind: ErrorKind = "temporary" if isinstance(e, ExchangeError) else "data"
        logger.warning(
            "Skipped %s %s this tick (%s: %s); its candles are backfilled by a later tick",
            symbol,
            timeframe,
            type(e).__name__,
            e,
        )
        return MarketReport(symbol, timeframe, error_kind=kind, error=f"{symbol} {timeframe}: {e}")
    except Exception as e:
        logger.exception("Unexpected error on %s %s; skipped this tick", symbol, timeframe)
        message = f"{symbol} {timeframe}: {type(e).__name__}: {e}"
        return MarketReport(symbol, timeframe, error_kind="other", error=message)
    _log_predictions(result)
    _notify_signal_change(deps, result)
    return MarketReport(
        symbol,
        timeframe,
        predictions=result.predictions,
        written=result.written,
        resolved=result.resolved,
    )


def _log_predictions(result: MarketResult) -> None:
    """STYLE.md B6: one INFO line per prediction: the model's direction and, separately, the
    policy's action and size."""
    for row in result.predictions:
        close_ms = row.candle_open_ms + result.step_ms
        logger.info(
            "%s %s candle_close_ts=%s proba_up=%.4f direction=%s action=%s size=%.2f "
            "model_id=%s latency_ms=%.0f%s",
            row.symbol,
            row.timeframe,
            f"{from_epoch_ms(close_ms):%Y-%m-%dT%H:%M}Z",
            row.proba_up,
            row.direction,
            ACTIONS[row.signal],
            row.size or 0.0,
            row.model_id,
            row.latency_ms,
            " backfill" if row.is_backfill else "",
        )


def _notify_signal_change(deps: BotDeps, result: MarketResult) -> None:
    for change in (result.signal_change, result.drift):
        if deps.notifier is not None and change is not None:
            deps.notifier.notify(change)


def _record_heartbeat(deps: BotDeps, report: TickReport, run_id: int) -> None:
    with session_scope(deps.session_factory, operation="record the bot heartbeat") as session:
        record_tick(
            session,
            run_id,
            now_ms=deps.wall_ms(),
            written=report.written,
            temporary_errors=report.errors("temporary"),
            data_errors=report.errors("data"),
            other_errors=report.errors("other"),
            last_error=report.last_error,
        )
