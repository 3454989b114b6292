"""The `/paper` report: a market's paper account, its trades and the expectation check."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.timeframes import from_epoch_ms
from ml.decision import ACTIONS, Action
from ml.registry import ModelManifest, ReturnBand
from serving.expectation import Expectation
from serving.track_record import TrackRecord, track_record


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())


class ExpectationOut(_Out):
    """Live vs expectation: the return band check, the accuracy check and the alarm.

    `live_return` is the paper return over the band's last `window_bars` candles; the alarm
    is raised when it is outside [p01, p99] or when the 99 % Wilson interval of the live
    accuracy over `accuracy_n` predictions excludes the walk-forward accuracy. `notes` say
    which check could not be made and why (e.g. an old model without a band).
    """

    band: ReturnBand | None
    live_return: float | None
    accuracy_n: int
    live_accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    walk_forward_accuracy: float | None
    expected_spread_low: float | None
    expected_spread_high: float | None
    alarm: bool
    reasons: list[str]
    notes: list[str]


class PaperPositionOut(_Out):
    """The paper position after the newest candle and the target decided at its close."""

    action: Action
    units: float
    cash: float
    equity: float
    target_action: Action
    target_size: float
    order_pending: bool


class PaperPointOut(_Out):
    """Paper equity and buy-and-hold equity after one candle."""

    candle_open: datetime
    equity: float
    buy_and_hold: float


class PaperTradeOut(_Out):
    """One paper round trip (open trades are marked to the newest close)."""

    entry_time: datetime
    exit_time: datetime | None
    side: Action
    units: float
    entry_price: float
    exit_price: float
    pnl_net: float
    fees: float
    is_open: bool
    model_id: str | None


_EXAMPLE_EXPECTATION: dict[str, Any] = {
    "band": {"window_bars": 168, "n_windows": 3123, "p01": -0.1198, "p05": -0.1002,
             "p50": -0.0121, "p95": 0.0598, "p99": 0.1282},
    "live_return": -0.0514,
    "accuracy_n": 168,
    "live_accuracy": 0.494,
    "accuracy_low": 0.397,
    "accuracy_high": 0.592,
    "walk_forward_accuracy": 0.548,
    "expected_spread_low": 0.449,
    "expected_spread_high": 0.647,
    "alarm": False,
    "reasons": [],
    "notes": [],
}  # fmt: skip
PAPER_EXAMPLE: dict[str, Any] = {
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "model_id": "BTC_USDT-1h-logreg-20210115T2300Z",
    "started_at": "2021-01-17T10:00:00Z",
    "n_candles": 2,
    "total_return": -0.0012,
    "buy_and_hold_return": 0.0031,
    "fees_paid": 9.5,
    "orders_rejected": 0,
    "position": {"action": "LONG", "units": 0.27, "cash": 515.2, "equity": 9988.0,
                 "target_action": "LONG", "target_size": 1.0, "order_pending": False},
    "equity": [
        {"candle_open": "2021-01-17T10:00:00Z", "equity": 10000.0, "buy_and_hold": 10000.0},
        {"candle_open": "2021-01-17T11:00:00Z", "equity": 9988.0, "buy_and_hold": 10031.0},
    ],
    "trades": [
        {"entry_time": "2021-01-17T11:00:00Z", "exit_time": None, "side": "LONG",
         "units": 0.27, "entry_price": 35100.0, "exit_price": 35080.0, "pnl_net": -12.0,
         "fees": 9.5, "is_open": True, "model_id": "BTC_USDT-1h-logreg-20210115T2300Z"},
    ],
    "expectation": _EXAMPLE_EXPECTATION,
}  # fmt: skip


class PaperOut(_Out):
    """A market's paper account since the bot started it, next to buy-and-hold."""

    model_config = ConfigDict(json_schema_extra={"examples": [PAPER_EXAMPLE]})

    symbol: str
    timeframe: str
    model_id: str | None
    started_at: datetime | None
    n_candles: int
    total_return: float | None
    buy_and_hold_return: float | None
    fees_paid: float
    orders_rejected: int
    position: PaperPositionOut | None
    equity: list[PaperPointOut]
    trades: list[PaperTradeOut]
    expectation: ExpectationOut


def expectation_out(check: Expectation) -> ExpectationOut:
    """The API form of an expectation check."""
    band: ReturnBand | None = check.returns.band if check.returns else None
    acc = check.accuracy
    return ExpectationOut(
        band=band,
        live_return=check.returns.live_return if check.returns else None,
        accuracy_n=acc.n if acc else 0,
        live_accuracy=acc.accuracy if acc else None,
        accuracy_low=acc.low if acc else None,
        accuracy_high=acc.high if acc else None,
        walk_forward_accuracy=acc.expected if acc else None,
        expected_spread_low=acc.spread_low if acc else None,
        expected_spread_high=acc.spread_high if acc else None,
        alarm=check.alarm,
        reasons=list(check.reasons),
        notes=list(check.notes),
    )


def paper_report(
    session: Any, manifest: ModelManifest | None, *, symbol: str, timeframe: str
) -> PaperOut:
    """Everything `/paper` returns for one market."""
    record = track_record(session, manifest, symbol=symbol, timeframe=timeframe)
    marks = record.marks
    held = [mark.equity for mark in marks]
    hold = record.buy_and_hold()
    return PaperOut(
        symbol=symbol,
        timeframe=timeframe,
        model_id=manifest.model_id if manifest else None,
        started_at=from_epoch_ms(marks[0].candle_open_ms) if marks else None,
        n_candles=len(marks),
        total_return=held[-1] / held[0] - 1 if marks else None,
        buy_and_hold_return=hold[-1] / hold[0] - 1 if marks else None,
        fees_paid=sum(o.fee for o in record.orders if o.status == "filled"),
        orders_rejected=sum(o.status == "rejected" for o in record.orders),
        position=_position(record),
        equity=[
            PaperPointOut(
                candle_open=from_epoch_ms(m.candle_open_ms), equity=m.equity, buy_and_hold=b
            )
            for m, b in zip(marks, hold, strict=True)
        ],
        trades=[_trade(trade) for trade in record.trades],
        expectation=expectation_out(record.expectation),
    )


def _position(record: TrackRecord) -> PaperPositionOut | None:
    if not record.marks:
        return None
    last = record.marks[-1]
    held = 1 if last.units > 0 else -1 if last.units < 0 else 0
    return PaperPositionOut(
        action=ACTIONS[held],
        units=last.units,
        cash=last.cash,
        equity=last.equity,
        target_action=ACTIONS[last.target_side],
        target_size=last.target_size,
        order_pending=last.target_side != held,
    )


def _trade(trade: Any) -> PaperTradeOut:
    return PaperTradeOut(
        entry_time=from_epoch_ms(trade.entry_ms),
        exit_time=None if trade.exit_ms is None else from_epoch_ms(trade.exit_ms),
        side=ACTIONS[trade.side],
        units=trade.units,
        entry_price=trade.entry_price,
        exit_price=trade.exit_price,
        pnl_net=trade.pnl_net,
        fees=trade.fees,
        is_open=trade.is_open,
        model_id=trade.model_id,
    )
