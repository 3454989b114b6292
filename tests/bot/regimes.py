"""A regime change for the drift scenario: replayed BTC candles up to a moment, then candles
that move against the replay model's every call, and a local webhook receiver for the alarm.

The drifted regime is built candle by candle: the model predicts the newest candle from the
history so far (as the bot will), and the next candle then closes `move` against that call
(down after an UP call, up after a DOWN call) from an open at the previous close. The model's
edge is thereby inverted: each drifted prediction is wrong, so live accuracy falls far below
the walk-forward figure the model was validated with.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd

from ml.predict import direction_of, predict_history, required_candles
from ml.registry import ModelArtifact
from tests.emulator.candles import CandleBook

WICK = 0.002
"""High and low stretch this fraction beyond the drifted candle's body."""


def _served_value(value: float) -> float:
    """A price as the emulator serves it (8 decimals), so the bot sees exactly these candles."""
    return float(f"{value:.8f}")


def drifted_candles(
    served: pd.DataFrame,
    artifact: ModelArtifact,
    *,
    drift_from: pd.Timestamp,
    n_bars: int,
    move: float,
) -> pd.DataFrame:
    """`served` up to just before `drift_from`, then `n_bars` candles each closing `move`
    against the model's call at the candle before (volumes are the real ones)."""
    history = served.loc[: drift_from - pd.Timedelta(hours=1)].copy()
    window = required_candles(artifact) + 24
    threshold = artifact.manifest.threshold
    volumes = served.loc[drift_from:, "volume"].iloc[:n_bars].tolist()
    for volume in volumes:
        proba = float(predict_history(artifact, history.iloc[-window:]).iloc[-1])
        sign = -1.0 if direction_of(proba, threshold) == "UP" else 1.0
        open_ = float(history["close"].iloc[-1])
        close = _served_value(open_ * (1.0 + sign * move))
        bar = {
            "open": open_,
            "high": _served_value(max(open_, close) * (1.0 + WICK)),
            "low": _served_value(min(open_, close) * (1.0 - WICK)),
            "close": close,
            "volume": float(volume),
        }
        stamp = history.index[-1] + pd.Timedelta(hours=1)
        history.loc[stamp] = pd.Series(bar)
    return history


def write_plain_csv(candles: pd.DataFrame, path: Path) -> Path:
    """The candles as a plain OHLCV CSV (epoch ms timestamps) the emulator can replay."""
    table = candles.reset_index(drop=True)
    table.insert(0, "timestamp", candles.index.asi8 // 1_000_000)
    table.to_csv(path, index=False, float_format="%.8f")
    return path


def as_served(candles: pd.DataFrame) -> pd.DataFrame:
    """The candles exactly as the emulator serves them (8-decimal strings parsed back)."""
    return CandleBook({"BTC/USDT": candles}, timeframe="1h").frame("BTC/USDT")


@dataclass
class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 that keeps every JSON body POSTed to it."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/drift"

    def start(self) -> WebhookReceiver:
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def events(self, *names: str) -> list[dict[str, Any]]:
        """The bodies whose `event` is one of `names`, in arrival order."""
        return [body for body in list(self.bodies) if body.get("event") in names]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
