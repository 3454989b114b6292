"""`BotRunner`: one bot process's state (deps, stop flag, fatal error) and its scheduled tick."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bot.deps import BotDeps
from bot.job import TickReport, run_once
from bot.retrain import maybe_retrain
from core.errors import AppError, ConfigError, ExchangeError, ModelError, StorageError
from data.exchange import CandleSource
from ml.registry import current_model_id
from storage.db import session_scope
from storage.repository import record_tick

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def local_clock() -> datetime:
    """The machine's clock in UTC."""
    return datetime.now(UTC)


def interruptible_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A `sleep` that returns early once `stop` is set."""

    def sleep(seconds: float) -> None:
        stop.wait(seconds)

    return sleep


def make_clock(kind: str, source: CandleSource) -> Clock:
    """`bot.clock`: "local" (the machine) or "exchange" (the exchange's server time, which a
    replaying emulator moves faster than real time)."""
    return source.server_time if kind == "exchange" else local_clock


class BotRunner:
    """Runs ticks one at a time, remembers a fatal error and lets SIGTERM stop it cleanly.

    `tick` is what the scheduler calls. A `ModelError`/`ConfigError` sets `fatal` and the stop
    flag (the main thread then shuts the scheduler down); anything transient is logged and the
    next tick tries again.
    """

    def __init__(self, deps: BotDeps, *, clock: Clock, stop: threading.Event | None = None) -> None:
        self.deps = deps
        self.stop = stop if stop is not None else threading.Event()
        self.fatal: AppError | None = None
        self.last_report: TickReport | None = None
        self._clock = clock
        self._busy = threading.Lock()
        self._refusing = False

    def refuse_new_ticks(self) -> None:
        """Lock-free (safe in a signal handler): ticks that have not started yet are skipped."""
        self._refusing = True

    def request_stop(self) -> None:
        """No new tick starts after this; the running one finishes."""
        self.stop.set()

    def wait_idle(self, timeout_seconds: float = 120.0) -> bool:
        """Block until no tick is running; False if it did not finish within the timeout."""
        if not self._busy.acquire(timeout=timeout_seconds):
            return False
        self._busy.release()
        return True

    def missing_models(self) -> list[str]:
        """The markets ("BTC/USDT 1h") with no current model promoted yet.

        Raises:
            ModelIntegrityError: a current-model pointer is corrupt.
        """
        bot = self.deps.settings.bot
        root = self.deps.models.root
        return [
            f"{symbol} {timeframe}"
            for timeframe in bot.timeframes
            for symbol in bot.symbols
            if current_model_id(root, symbol, timeframe) is None
        ]

    def wait_for_models(
        self, *, interval_seconds: float, stopped: Callable[[], bool], poll_seconds: float = 0.1
    ) -> bool:
        """Block until every market has a current model (True) or `stopped()` (False).

        Logs one WARNING when the wait starts and one INFO when it ends, instead of failing
        (a container restarting the bot would crash-loop). A corrupt pointer sets `fatal`.
        """
        try:
            missing = self.missing_models()
            if missing:
                logger.warning(
                    "No current model for %s in %s: waiting for one (train it with `cryptopred "
                    "train`), checking every %g s (bot.model_wait_seconds)",
                    ", ".join(missing),
                    self.deps.models.root,
                    interval_seconds,
                )
            while missing:
                deadline = time.monotonic() + interval_seconds
                while time.monotonic() < deadline:
                    if stopped():
                        return False
                    time.sleep(min(poll_seconds, interval_seconds))
                missing = self.missing_models()
                if not missing:
                    logger.info("A current model exists now for every market: starting")
        except ModelError as e:
            self._fail(e)
            return False
        return True

    def tick(self, timeframes: tuple[str, ...] | None = None) -> TickReport | None:
        """One tick (all timeframes, or the given ones); None when skipped or stopped."""
        if self._refusing or self.stop.is_set():
            return None
        with self._busy:
            if self._refusing or self.stop.is_set():
                return None
            return self._tick(timeframes)

    def _tick(self, timeframes: tuple[str, ...] | None) -> TickReport | None:
        try:
            now = self._clock()
        except ExchangeError as e:
            logger.warning("Tick skipped: cannot read the exchange clock (%s)", e)
            self._count_clock_failure(str(e))
            return None
        try:
            report = run_once(self.deps, now, timeframes=timeframes)
            if self.deps.settings.bot.retrain.every is not None:
                maybe_retrain(self.deps, now=now)
        except (ModelError, ConfigError) as e:
            self._fail(e)
            return None
        except StorageError as e:
            logger.error("Tick at %s not fully recorded: %s", f"{now:%Y-%m-%d %H:%M:%S}Z", e)
            return None
        self.last_report = report
        return report

    def _fail(self, error: AppError) -> None:
        self.fatal = error
        self.stop.set()
        logger.error("The bot stops: %s", error)

    def _count_clock_failure(self, message: str) -> None:
        if self.deps.run_id is None:
            return
        try:
            with session_scope(self.deps.session_factory, operation="record a tick") as session:
                record_tick(
                    session,
                    self.deps.run_id,
                    now_ms=self.deps.wall_ms(),
                    temporary_errors=1,
                    last_error=f"exchange clock: {message}",
                )
        except StorageError as e:
            logger.error("Heartbeat not recorded: %s", e)
