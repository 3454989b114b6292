"""Scheduler wiring (triggers, job options) and `BotRunner` (clock, fatal errors, stopping)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.deps import BotDeps
from bot.runner import BotRunner, make_clock
from bot.scheduler import build_scheduler, cron_for, misfire_grace_seconds, run_scheduler
from core.errors import ConfigError, ExchangeUnavailableError, ModelNotFoundError
from core.settings import BotSettings
from storage.db import session_scope
from storage.repository import latest_bot_run, start_bot_run
from tests.bot.conftest import FakeSource
from tests.conftest import log_has


def _fire_times(trigger: CronTrigger, start: datetime, n: int) -> list[str]:
    times, previous, now = [], None, start
    for _ in range(n):
        fire = trigger.get_next_fire_time(previous, now)
        times.append(f"{fire:%d %H:%M:%S}")
        previous, now = fire, fire
    return times


@pytest.mark.parametrize(
    ("timeframe", "offset", "expected"),
    [
        ("1m", 5, ["01 00:00:05", "01 00:01:05", "01 00:02:05"]),
        ("15m", 5, ["01 00:00:05", "01 00:15:05", "01 00:30:05"]),
        ("1h", 5, ["01 00:00:05", "01 01:00:05", "01 02:00:05"]),
        ("4h", 2.5, ["01 00:00:03", "01 04:00:03", "01 08:00:03"]),
        ("1d", 90, ["01 00:01:30", "02 00:01:30", "03 00:01:30"]),
    ],
)
def test_cron_for_fires_after_each_close_in_utc(
    timeframe: str, offset: float, expected: list[str]
) -> None:
    start = datetime(2024, 3, 1, 0, 0, 0, tzinfo=UTC)
    assert _fire_times(cron_for(timeframe, offset), start, 3) == expected


def test_cron_for_refuses_an_offset_longer_than_a_candle() -> None:
    with pytest.raises(ConfigError, match=r"bot\.schedule_offset_seconds"):
        cron_for("5m", 400)


def test_misfire_grace_defaults_to_half_a_candle() -> None:
    assert misfire_grace_seconds(BotSettings(), "4h") == 7200
    assert misfire_grace_seconds(BotSettings(misfire_grace_seconds=30), "4h") == 30


def test_build_scheduler_cron_per_timeframe_plus_startup_tick(
    make_deps: Callable[..., BotDeps],
) -> None:
    cfg = BotSettings(timeframes=("1h", "4h"), schedule_offset_seconds=5)
    scheduler = build_scheduler(cfg, BotRunner(make_deps(), clock=lambda: datetime.now(UTC)))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"tick-1h", "tick-4h", "startup"}
    assert isinstance(jobs["tick-4h"].trigger, CronTrigger)
    assert jobs["tick-4h"].kwargs == {"timeframes": ("4h",)}
    assert jobs["tick-1h"].misfire_grace_time == 1800
    assert isinstance(jobs["startup"].trigger, DateTrigger)
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
    assert str(scheduler.timezone) == "UTC"


def test_build_scheduler_poll_mode_uses_an_interval(make_deps: Callable[..., BotDeps]) -> None:
    cfg = BotSettings(poll_seconds=0.5)
    scheduler = build_scheduler(cfg, BotRunner(make_deps(), clock=lambda: datetime.now(UTC)))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"tick", "startup"}
    assert isinstance(jobs["tick"].trigger, IntervalTrigger)
    assert jobs["tick"].trigger.interval.total_seconds() == 0.5


def test_make_clock_exchange_reads_the_source(source: FakeSource) -> None:
    assert make_clock("exchange", source)() == source.now
    assert make_clock("local", source)().year >= 2025


def test_runner_tick_uses_its_clock(make_deps: Callable[..., BotDeps], source: FakeSource) -> None:
    runner = BotRunner(make_deps(), clock=source.server_time)
    report = runner.tick()
    assert report is not None and report.now == source.now and report.written == 1
    assert runner.last_report is report


def test_runner_fatal_error_stops(make_deps: Callable[..., BotDeps], source: FakeSource) -> None:
    source.errors["BTC/USDT"] = [ModelNotFoundError("no model")]
    runner = BotRunner(make_deps(), clock=source.server_time)
    assert runner.tick() is None
    assert isinstance(runner.fatal, ModelNotFoundError)
    assert runner.stop.is_set()
    assert runner.tick() is None  # stopped: no further tick runs
    assert source.calls == [("BTC/USDT", source.calls[0][1])]


def test_runner_clock_failure_skips_the_tick_and_counts_it(
    make_deps: Callable[..., BotDeps],
    session_factory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with session_scope(session_factory) as session:
        run_id = start_bot_run(session, started_ms=0, host="test", pid=1)

    def broken_clock() -> datetime:
        raise ExchangeUnavailableError("Could not read the binance server time: timeout")

    runner = BotRunner(make_deps(run_id=run_id), clock=broken_clock)
    assert runner.tick() is None
    assert runner.fatal is None
    assert log_has(caplog, "Tick skipped: cannot read the exchange clock", logging.WARNING)
    with session_scope(session_factory, read_only=True) as session:
        run = latest_bot_run(session)
    assert run is not None and (run.ticks, run.temporary_errors) == (1, 1)


def test_run_scheduler_sigterm_finishes_the_tick_and_returns(
    make_deps: Callable[..., BotDeps], source: FakeSource
) -> None:
    """A real scheduler in this process; SIGTERM arrives while a tick is running."""
    ticking, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    class SlowRunner(BotRunner):
        def _tick(self, timeframes):  # type: ignore[no-untyped-def]
            ticking.set()
            release.wait(5)
            report = super()._tick(timeframes)
            finished.append(report is not None)
            return report

    runner = SlowRunner(make_deps(), clock=source.server_time)
    scheduler = build_scheduler(BotSettings(poll_seconds=0.05), runner)

    def stop_during_tick() -> None:
        ticking.wait(5)
        os.kill(os.getpid(), signal.SIGTERM)
        release.set()

    helper = threading.Thread(target=stop_during_tick)
    helper.start()
    previous = signal.getsignal(signal.SIGTERM)
    run_scheduler(scheduler, runner)
    helper.join()
    assert finished == [True]  # the interrupted tick completed, no new one started
    assert runner.stop.is_set() and runner.fatal is None
    assert signal.getsignal(signal.SIGTERM) == previous
