"""A market's live track record as the API, the dashboard and the bot's alarms read it: the
paper account (position, trades, equity vs buy-and-hold) and its expectation check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ml.registry import ModelManifest, ReturnBand
from serving.expectation import ACCURACY_WINDOW, Expectation, check_expectation
from storage.db import DbSession
from storage.paper import PaperMark, PaperOrder, list_paper_marks, list_paper_orders
from storage.repository import resolved_predictions


@dataclass(frozen=True, slots=True)
class PaperTrade:
    """A round trip of the paper account (an open one is marked to the newest close)."""

    entry_ms: int
    exit_ms: int | None
    side: int
    units: float
    entry_price: float
    exit_price: float
    pnl_net: float
    fees: float
    model_id: str | None

    @property
    def is_open(self) -> bool:
        """True while the position is held."""
        return self.exit_ms is None


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """Marks (oldest first), filled and refused orders, round trips and the check."""

    marks: tuple[PaperMark, ...]
    orders: tuple[PaperOrder, ...]
    trades: tuple[PaperTrade, ...]
    expectation: Expectation

    def buy_and_hold(self) -> list[float]:
        """Equity of buying with the starting cash at the first mark's close and holding."""
        if not self.marks:
            return []
        first = self.marks[0]
        return [first.equity * mark.close / first.close for mark in self.marks]


def trades_of(orders: Sequence[PaperOrder], *, last_close: float) -> list[PaperTrade]:
    """Pair each filled entry with the exit that follows it (fees of both sides)."""
    trades: list[PaperTrade] = []
    entry: PaperOrder | None = None
    for order in (o for o in orders if o.status == "filled"):
        if order.role == "entry":
            entry = order
            continue
        if entry is not None:
            trades.append(_trade(entry, order.price, order.fee, order.fill_open_ms))
            entry = None
    if entry is not None:
        trades.append(_trade(entry, last_close, 0.0, None))
    return trades


def _trade(
    entry: PaperOrder, exit_price: float, exit_fee: float, exit_ms: int | None
) -> PaperTrade:
    fees = entry.fee + exit_fee
    return PaperTrade(
        entry_ms=entry.fill_open_ms,
        exit_ms=exit_ms,
        side=1 if entry.units > 0 else -1,
        units=abs(entry.units),
        entry_price=entry.price,
        exit_price=exit_price,
        pnl_net=entry.units * (exit_price - entry.price) - fees,
        fees=fees,
        model_id=entry.model_id,
    )


def market_expectation(
    session: DbSession,
    manifest: ModelManifest | None,
    *,
    symbol: str,
    timeframe: str,
    marks: Sequence[PaperMark] | None = None,
) -> Expectation:
    """The expectation check of a market's paper account and its model's latest predictions."""
    if marks is None:
        longest = max((b.window_bars for b in _bands(manifest)), default=0)
        marks = list_paper_marks(session, symbol=symbol, timeframe=timeframe, limit=longest + 1)
    predictions = resolved_predictions(
        session,
        symbol=symbol,
        timeframe=timeframe,
        model_id=manifest.model_id if manifest else None,
        limit=ACCURACY_WINDOW,
    )
    return check_expectation(
        manifest,
        equity=[mark.equity for mark in marks],
        outcomes=[bool(p.is_correct) for p in predictions],
    )


def _bands(manifest: ModelManifest | None) -> tuple[ReturnBand, ...]:
    return manifest.decision.return_bands if manifest and manifest.decision else ()


def track_record(
    session: DbSession, manifest: ModelManifest | None, *, symbol: str, timeframe: str
) -> TrackRecord:
    """Everything the `/paper` endpoint and the dashboard show for one market."""
    marks = list_paper_marks(session, symbol=symbol, timeframe=timeframe)
    orders = list_paper_orders(session, symbol=symbol, timeframe=timeframe)
    trades = trades_of(orders, last_close=marks[-1].close) if marks else []
    expectation = market_expectation(
        session, manifest, symbol=symbol, timeframe=timeframe, marks=marks
    )
    return TrackRecord(tuple(marks), tuple(orders), tuple(trades), expectation)
