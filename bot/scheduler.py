"""APScheduler wiring: a UTC cron per timeframe just after each candle close, or a poll interval."""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from datetime import UTC
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.runner import BotRunner
from core.errors import ConfigError
from core.settings import BotSettings
from core.timeframes import timeframe_to_ms

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def cron_for(timeframe: str, offset_seconds: float) -> CronTrigger:
    """A UTC cron firing `offset_seconds` (rounded up to whole seconds) after each close.

    >>> cron_for("1h", 5)
    <CronTrigger (minute='0', second='5', timezone='UTC')>
    >>> cron_for("4h", 75)
    <CronTrigger (hour='*/4', minute='1', second='15', timezone='UTC')>
    >>> cron_for("15m", 5)
    <CronTrigger (minute='0/15', second='5', timezone='UTC')>
    """
    minutes_per_bar = timeframe_to_ms(timeframe) // 60_000
    minutes, seconds = divmod(math.ceil(offset_seconds), 60)
    if minutes >= min(minutes_per_bar, 60):
        raise ConfigError(
            f"bot.schedule_offset_seconds ({offset_seconds:g}) must be shorter than one "
            f"{timeframe} candle and than an hour; a few seconds is enough"
        )
    if minutes_per_bar < 60:
        return CronTrigger(minute=f"{minutes}/{minutes_per_bar}", second=seconds, timezone=UTC)
    hours_per_bar = minutes_per_bar // 60
    if hours_per_bar == 1:
        return CronTrigger(minute=minutes, second=seconds, timezone=UTC)
    if hours_per_bar < 24:
        hour = f"*/{hours_per_bar}"
        return CronTrigger(hour=hour, minute=minutes, second=seconds, timezone=UTC)
    return CronTrigger(hour=0, minute=minutes, second=seconds, timezone=UTC)


def misfire_grace_seconds(cfg: BotSettings, timeframe: str) -> int:
    """`bot.misfire_grace_seconds`, by default half a candle (a late tick is still useful).

    >>> misfire_grace_seconds(BotSettings(), "1h")
    1800
    """
    if cfg.misfire_grace_seconds is not None:
        return math.ceil(cfg.misfire_grace_seconds)
    return timeframe_to_ms(timeframe) // 2000


def build_scheduler(cfg: BotSettings, runner: BotRunner) -> BackgroundScheduler:
    """A UTC scheduler: one tick at start-up, then a cron per timeframe (or an interval of
    `bot.poll_seconds`). One worker thread, so ticks never overlap; `coalesce=True` and
    `max_instances=1`, so a late or missed run becomes one run of "the latest closed candle".

    It runs in its own thread (BackgroundScheduler) while the main thread waits for signals
    (see `StopSignals`): a BlockingScheduler's loop in the main thread deadlocked when a
    SIGTERM handler shut it down while the loop held the thread pool's lock.
    """
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    for job_id, trigger, kwargs, grace in _jobs(cfg):
        scheduler.add_job(
            runner.tick,
            trigger,
            kwargs=kwargs,
            id=job_id,
            misfire_grace_time=grace,
            coalesce=True,
            max_instances=1,
        )
    # a first tick at once: after a restart, backfill now rather than at the next close
    scheduler.add_job(
        runner.tick, "date", id="startup", misfire_grace_time=None, coalesce=True, max_instances=1
    )
    return scheduler


def _jobs(cfg: BotSettings) -> list[tuple[str, BaseTrigger, dict[str, Any], int]]:
    if cfg.poll_seconds is not None:
        grace = math.ceil(cfg.misfire_grace_seconds or max(1.0, cfg.poll_seconds))
        trigger = IntervalTrigger(seconds=cfg.poll_seconds, timezone=UTC)
        return [("tick", trigger, {}, grace)]
    return [
        (
            f"tick-{timeframe}",
            cron_for(timeframe, cfg.schedule_offset_seconds),
            {"timeframes": (timeframe,)},
            misfire_grace_seconds(cfg, timeframe),
        )
        for timeframe in cfg.timeframes
    ]


def describe_jobs(scheduler: BackgroundScheduler) -> list[str]:
    """One line per job: id, trigger and next run (for the start-up log)."""
    return [f"{job.id}: {job.trigger}" for job in scheduler.get_jobs()]


class StopSignals:
    """Records SIGTERM/SIGINT while active; the handler takes no lock and does no work.

    A Python signal handler runs in the main thread between any two bytecodes, possibly while
    that thread holds a non-reentrant lock (an Event's condition, a thread pool's shutdown
    lock): calling `scheduler.shutdown()` or even `Event.set()` from it can deadlock. So the
    handler only stores the signal number and the main thread acts on it.
    """

    def __init__(self, *, on_signal: Callable[[], None] = lambda: None) -> None:
        """`on_signal` runs inside the handler: it must be lock-free (e.g. set an attribute)."""
        self.received: int | None = None
        self._on_signal = on_signal
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        self._on_signal()


def wait_for_stop(
    runner: BotRunner,
    signals: StopSignals,
    *,
    done: Callable[[], bool] = lambda: False,
    poll_seconds: float = 0.1,
) -> None:
    """Block the main thread until a stop signal, a fatal error or `done()`; then stop ticking."""
    while signals.received is None and not runner.stop.is_set() and not done():
        time.sleep(poll_seconds)  # a signal cuts the sleep short
    if signals.received is not None:
        name = signal.Signals(signals.received).name
        logger.info("Received %s: finishing the running tick, then stopping", name)
    runner.request_stop()


def run_scheduler(scheduler: BackgroundScheduler, runner: BotRunner) -> None:
    """Run until SIGTERM/SIGINT or a fatal error; the running tick always finishes first."""
    with StopSignals(on_signal=runner.refuse_new_ticks) as signals:
        scheduler.start()
        logger.info("Bot schedule (UTC): %s", "; ".join(describe_jobs(scheduler)))
        wait_for_stop(runner, signals)
        scheduler.shutdown(wait=False)
        if not runner.wait_idle():
            logger.warning("The running tick did not finish in time; exiting anyway")
