"""Signal-change notifications: a JSON POST to a webhook from a background thread."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from core.settings import WebhookSettings
from core.timeframes import from_epoch_ms
from core.types import Signal

logger = logging.getLogger(__name__)

SIGNAL_NAMES: dict[int, str] = {-1: "short", 0: "flat", 1: "long"}


@dataclass(frozen=True, slots=True)
class SignalChange:
    """The newest signal of a market differs from the one before it."""

    exchange: str
    symbol: str
    timeframe: str
    candle_open_ms: int
    candle_close_ms: int
    proba_up: float
    previous_signal: Signal
    signal: Signal
    model_id: str

    def payload(self) -> dict[str, Any]:
        """The JSON body of the webhook POST."""
        return {
            "event": "signal_changed",
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "candle_open": from_epoch_ms(self.candle_open_ms).isoformat(),
            "candle_close": from_epoch_ms(self.candle_close_ms).isoformat(),
            "proba_up": self.proba_up,
            "previous_signal": self.previous_signal,
            "signal": self.signal,
            "text": (
                f"{self.symbol} {self.timeframe}: {SIGNAL_NAMES[self.previous_signal]} -> "
                f"{SIGNAL_NAMES[self.signal]} (p_up {self.proba_up:.3f}, model {self.model_id})"
            ),
            "model_id": self.model_id,
        }


class Notifier(Protocol):
    """Something told about signal changes; `notify` must return at once."""

    def notify(self, change: SignalChange) -> None:
        """Queue one notification."""
        ...

    def close(self, *, timeout_seconds: float = 10.0) -> None:
        """Deliver what is queued (bounded by the timeout) and stop."""
        ...


PostFunction = Callable[..., Any]


class WebhookNotifier:
    """POSTs each `SignalChange` as JSON from a daemon thread, with timeout and retries.

    The tick only enqueues; a slow or dead webhook never delays a prediction. Failures are
    logged as warnings with the URL's host only (webhook paths often embed a secret token).
    """

    def __init__(
        self,
        cfg: WebhookSettings,
        *,
        post: PostFunction = requests.post,
        sleep: Callable[[float], None] = time.sleep,
        backoff_seconds: float = 1.0,
    ) -> None:
        if not cfg.url:
            raise ValueError("WebhookNotifier needs bot.webhook.url")
        self._url = cfg.url
        self._cfg = cfg
        self._post = post
        self._sleep = sleep
        self._backoff_seconds = backoff_seconds
        self._queue: queue.Queue[SignalChange | None] = queue.Queue()
        self.delivered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._work, name="webhook", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """The webhook's host (safe to log)."""
        return urlsplit(self._url).netloc

    def notify(self, change: SignalChange) -> None:
        """Queue the change; returns immediately."""
        self._queue.put(change)

    def close(self, *, timeout_seconds: float = 10.0) -> None:
        """Let the queued notifications go out (for at most `timeout_seconds`), then stop."""
        self._queue.put(None)
        self._thread.join(timeout_seconds)
        if self._thread.is_alive():
            logger.warning(
                "Webhook %s: gave up waiting for %d queued notification(s) at shutdown",
                self.host,
                self._queue.qsize(),
            )

    def _work(self) -> None:
        while True:
            change = self._queue.get()
            if change is None:
                return
            if self._deliver(change):
                self.delivered += 1
            else:
                self.failed += 1

    def _deliver(self, change: SignalChange) -> bool:
        payload = change.payload()
        problem = ""
        for attempt in range(1, self._cfg.max_attempts + 1):
            try:
                response = self._post(self._url, json=payload, timeout=self._cfg.timeout_seconds)
                status = int(response.status_code)
                if status < 300:
                    logger.debug("Webhook %s: delivered %s", self.host, payload["text"])
                    return True
                problem = f"HTTP {status}"
            except requests.RequestException as e:
                problem = f"{type(e).__name__}: {e}"
            if attempt < self._cfg.max_attempts:
                self._sleep(self._backoff_seconds * 2 ** (attempt - 1))
        logger.warning(
            "Webhook %s: could not deliver %r after %d attempts (%s); check bot.webhook.url",
            self.host,
            payload["text"],
            self._cfg.max_attempts,
            problem.replace(self._url, self.host),
        )
        return False
