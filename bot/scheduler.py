"""APScheduler wiring: a UTC cron per timeframe just after each candle close, or a poll interval."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
from datetime import UTC
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
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


def build_scheduler(cfg: BotSettings, runner: BotRunner) -> BlockingScheduler:
    """A blocking UTC scheduler: one tick at start-up, then a cron per timeframe (or an interval
    of `bot.poll_seconds`). One worker thread, so ticks never overlap; `coalesce=True` and
    `max_instances=1`, so a late or missed run becomes one run of "the latest closed candle".
    """
    scheduler = BlockingScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    for job_id, trigger, kwargs, grace in _jobs(cfg):
        scheduler.add_job(runner.tick, trigger, kwargs=kwargs, id=job_id, misfire_grace_time=grace)
    # a first tick at once: after a restart, backfill now rather than at the next close
    scheduler.add_job(runner.tick, "date", id="startup", misfire_grace_time=None)
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


def describe_jobs(scheduler: BlockingScheduler) -> list[str]:
    """One line per job: id, trigger and next run (for the start-up log)."""
    return [f"{job.id}: {job.trigger}" for job in scheduler.get_jobs()]


def run_scheduler(scheduler: BlockingScheduler, runner: BotRunner) -> None:
    """Run until SIGTERM/SIGINT or a fatal error; the running tick always finishes first."""

    def shutdown() -> None:
        with contextlib.suppress(SchedulerNotRunningError):  # a signal and a fatal error race
            scheduler.shutdown(wait=False)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info(
            "Received %s: finishing the running tick, then stopping", signal.Signals(signum).name
        )
        runner.request_stop()
        shutdown()

    runner.on_fatal = shutdown
    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        logger.info("Bot schedule (UTC): %s", "; ".join(describe_jobs(scheduler)))
        scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    runner.request_stop()
    if not runner.wait_idle():
        logger.warning("The running tick did not finish in time; exiting anyway")
