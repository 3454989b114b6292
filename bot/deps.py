"""`BotDeps`: the collaborators of a bot tick, built once by the entry point."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.notify import Notifier
from core.settings import Settings
from core.timeframes import to_epoch_ms
from data.exchange import CandleSource
from serving.models import ModelCache
from storage.db import SessionFactory


def wall_clock_ms() -> int:
    """The local wall clock in epoch ms (heartbeats are about the process, not the candles)."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class BotDeps:
    """Everything a tick needs; tests build their own with fakes and fixed clocks.

    `sleep` waits between closed-candle retries (the entry point makes it interruptible by
    SIGTERM); `elapsed` is a monotonic clock in seconds used to time the tick; `wall_ms` stamps
    the heartbeat row.
    """

    settings: Settings
    source: CandleSource
    session_factory: SessionFactory
    models: ModelCache
    run_id: int | None = None
    notifier: Notifier | None = None
    sleep: Callable[[float], None] = time.sleep
    elapsed: Callable[[], float] = time.perf_counter
    wall_ms: Callable[[], int] = wall_clock_ms


def ms_since(deps: BotDeps, started: float) -> float:
    """Milliseconds elapsed since `started` (a value of `deps.elapsed()`)."""
    return (deps.elapsed() - started) * 1000.0


def tick_time_ms(deps: BotDeps, now: datetime, started: float) -> int:
    """`now` advanced by the time spent since the tick started, in the tick's own clock."""
    return to_epoch_ms(now) + round(ms_since(deps, started))
