"""Signal-change and drift-alarm notifications: a JSON POST to a webhook from a thread."""

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
from core.types import Direction, Signal
from ml.decision import ACTIONS

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignalChange:
    """The policy's newest action for a market differs from the one before it.

    `signal`/`size` are the action (LONG/FLAT/SHORT and the traded fraction of
    `strategy.position_fraction`); `direction` is the model's separate UP/DOWN call at its
    classification threshold, which can disagree with the action (hysteresis, minimum hold,
    cooldown). `policy_source` says which policy decided.
    """

    exchange: str
    symbol: str
    timeframe: str
    candle_open_ms: int
    candle_close_ms: int
    proba_up: float
    direction: Direction
    previous_signal: Signal
    previous_size: float
    signal: Signal
    size: float
    model_id: str
    policy_source: str

    @property
    def action(self) -> str:
        """LONG, FLAT or SHORT."""
        return ACTIONS[self.signal]

    @property
    def previous_action(self) -> str:
        """The action before this change."""
        return ACTIONS[self.previous_signal]

    @property
    def text(self) -> str:
        """One line for chat webhooks: the action change, then the model's direction."""
        before = _sized(self.previous_action, self.previous_size)
        return (
            f"{self.symbol} {self.timeframe}: {before} -> {_sized(self.action, self.size)} "
            f"(direction {self.direction}, p_up {self.proba_up:.3f}; policy "
            f"{self.policy_source}; model {self.model_id})"
        )

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
            "direction": self.direction,
            "previous_signal": self.previous_signal,
            "signal": self.signal,
            "previous_action": self.previous_action,
            "action": self.action,
            "previous_size": self.previous_size,
            "size": self.size,
            "policy_source": self.policy_source,
            "text": self.text,
            "model_id": self.model_id,
        }


@dataclass(frozen=True, slots=True)
class DriftAlarm:
    """Live results left (`raised`) or came back into (not `raised`) what the model's
    validation promised (`serving.expectation`), at the mark of `candle_open_ms`."""

    exchange: str
    symbol: str
    timeframe: str
    candle_open_ms: int
    model_id: str
    raised: bool
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        """One line for chat webhooks."""
        if not self.raised:
            return f"{self.symbol} {self.timeframe}: drift alarm cleared (model {self.model_id})"
        return (
            f"{self.symbol} {self.timeframe}: DRIFT ALARM: {'; '.join(self.reasons)} "
            f"(model {self.model_id})"
        )

    def payload(self) -> dict[str, Any]:
        """The JSON body of the webhook POST."""
        return {
            "event": "drift_alarm_raised" if self.raised else "drift_alarm_cleared",
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "candle_open": from_epoch_ms(self.candle_open_ms).isoformat(),
            "model_id": self.model_id,
            "reasons": list(self.reasons),
            "text": self.text,
        }


Notification = SignalChange | DriftAlarm
"""What the bot tells its webhook about."""


def _sized(action: str, size: float) -> str:
    """An action and its size for messages.

    >>> _sized("LONG", 0.5), _sized("FLAT", 0.0)
    ('LONG 0.50', 'FLAT')
    """
    return action if action == "FLAT" else f"{action} {size:.2f}"


class Notifier(Protocol):
    """Something told about signal changes; `notify` must return at once."""

    def notify(self, change: Notification) -> None:
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
        self._queue: queue.Queue[Notification | None] = queue.Queue()
        self.delivered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._work, name="webhook", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """The webhook's host (safe to log)."""
        return urlsplit(self._url).netloc

    def notify(self, change: Notification) -> None:
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

    def _deliver(self, change: Notification) -> bool:
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
