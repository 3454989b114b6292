"""The webhook notifier against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bot.notify import DriftAlarm, SignalChange, WebhookNotifier
from core.settings import WebhookSettings
from tests.conftest import log_has

CHANGE = SignalChange(
    exchange="binance",
    symbol="BTC/USDT",
    timeframe="1h",
    candle_open_ms=1_700_000_000_000 - 1_700_000_000_000 % 3_600_000,
    candle_close_ms=1_700_000_000_000 - 1_700_000_000_000 % 3_600_000 + 3_600_000,
    proba_up=0.61,
    direction="UP",
    previous_signal=0,
    previous_size=0.0,
    signal=1,
    size=0.5,
    model_id="BTC_USDT-1h-logreg-x",
    policy_source="manifest",
)


@dataclass
class Hook:
    """What the webhook server received and how it answers (status codes, in order)."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    url: str = ""


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()
    state.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            state.bodies.append(json.loads(self.rfile.read(length)))
            state.gate.wait(10)
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/s3cr3t-token"
    yield state
    state.gate.set()
    server.shutdown()
    server.server_close()


def test_webhook_posts_the_signal_change_as_json(hook: Hook) -> None:
    notifier = WebhookNotifier(WebhookSettings(url=hook.url), sleep=lambda _s: None)
    notifier.notify(CHANGE)
    notifier.close()
    (body,) = hook.bodies
    assert body["event"] == "signal_changed"
    assert (body["symbol"], body["previous_signal"], body["signal"]) == ("BTC/USDT", 0, 1)
    assert body["candle_close"] == "2023-11-14T23:00:00+00:00"
    assert (body["previous_action"], body["action"], body["size"]) == ("FLAT", "LONG", 0.5)
    assert (body["direction"], body["policy_source"]) == ("UP", "manifest")
    assert body["text"] == (
        "BTC/USDT 1h: FLAT -> LONG 0.50 (direction UP, p_up 0.610; policy manifest; "
        "model BTC_USDT-1h-logreg-x)"
    )
    assert notifier.delivered == 1


def test_webhook_retries_server_errors_with_backoff(hook: Hook) -> None:
    hook.statuses = [500, 503]
    waits: list[float] = []
    notifier = WebhookNotifier(WebhookSettings(url=hook.url, max_attempts=3), sleep=waits.append)
    notifier.notify(CHANGE)
    notifier.close()
    assert len(hook.bodies) == 3
    assert waits == [1.0, 2.0]
    assert notifier.delivered == 1


def test_webhook_gives_up_with_a_warning_without_leaking_the_url(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    hook.statuses = [500, 500]
    notifier = WebhookNotifier(WebhookSettings(url=hook.url, max_attempts=2), sleep=lambda _s: None)
    notifier.notify(CHANGE)
    notifier.close()
    assert notifier.failed == 1
    assert log_has(caplog, "after 2 attempts (HTTP 500)", logging.WARNING)
    assert not any("s3cr3t" in record.getMessage() for record in caplog.records)


def test_webhook_never_blocks_the_caller(hook: Hook) -> None:
    hook.gate.clear()  # the server holds every request until the gate opens
    notifier = WebhookNotifier(WebhookSettings(url=hook.url), sleep=lambda _s: None)
    for _ in range(3):
        notifier.notify(CHANGE)  # returns although nothing was delivered yet
    assert notifier.delivered == 0
    hook.gate.set()
    notifier.close()
    assert notifier.delivered == 3


def test_webhook_timeout_counts_as_a_failed_attempt(hook: Hook) -> None:
    hook.gate.clear()
    cfg = WebhookSettings(url=hook.url, timeout_seconds=0.1, max_attempts=2)
    notifier = WebhookNotifier(cfg, sleep=lambda _s: None)
    notifier.notify(CHANGE)
    notifier.close()
    hook.gate.set()
    assert notifier.failed == 1
    assert len(hook.bodies) == 2


ALARM = DriftAlarm(
    exchange="binance",
    symbol="BTC/USDT",
    timeframe="1h",
    candle_open_ms=CHANGE.candle_open_ms,
    model_id="BTC_USDT-1h-logreg-x",
    raised=True,
    reasons=(
        "paper return over the last 24 candles -20.00% is outside the out-of-sample 1-99 % "
        "band [-10.00%, +10.00%]",
        "live accuracy 0.0% over 40 predictions (99 % Wilson [0.0%, 14.2%]) excludes the "
        "walk-forward 55.0%",
    ),
)


def test_webhook_posts_drift_alarms_raised_and_cleared(hook: Hook) -> None:
    notifier = WebhookNotifier(WebhookSettings(url=hook.url), sleep=lambda _s: None)
    notifier.notify(ALARM)
    notifier.notify(replace(ALARM, raised=False, reasons=()))
    notifier.close()
    raised, cleared = hook.bodies
    assert raised == {
        "event": "drift_alarm_raised",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "candle_open": "2023-11-14T22:00:00+00:00",
        "model_id": "BTC_USDT-1h-logreg-x",
        "reasons": list(ALARM.reasons),
        "text": "BTC/USDT 1h: DRIFT ALARM: "
        + "; ".join(ALARM.reasons)
        + " (model BTC_USDT-1h-logreg-x)",
    }
    assert cleared["event"] == "drift_alarm_cleared" and cleared["reasons"] == []
    assert cleared["text"] == "BTC/USDT 1h: drift alarm cleared (model BTC_USDT-1h-logreg-x)"
    assert {k: v for k, v in cleared.items() if k not in ("event", "reasons", "text")} == {
        k: v for k, v in raised.items() if k not in ("event", "reasons", "text")
    }
    assert notifier.delivered == 2
