"""A local Binance spot REST emulator (exchangeInfo, time, klines, ping) with a clock and faults."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from core.timeframes import timeframe_to_ms
from data.schema import index_to_epoch_ms
from tests.emulator.candles import CandleBook

logger = logging.getLogger(__name__)

HTTP_FAULTS = (
    "rate_limit",  # 429 + {"code":-1003} + Retry-After
    "ban",  # 418 + Retry-After
    "server_error",  # 500 + {"code":-1001}
    "bad_gateway",  # 502 HTML
    "unavailable",  # 503 HTML
    "slow",  # answers after `slow_seconds` (longer than the client timeout)
    "disconnect",  # connection closed without a response
    "truncated_json",  # 200 with the JSON cut in half
    "html",  # 200 with an HTML page
    "empty_body",  # 200 with no body at all
)
DATA_FAULTS = (
    "nan_value",  # a price is "NaN"
    "empty_value",  # a price is ""
    "null_value",  # a price is null
    "high_below_low",  # high and low swapped
    "duplicate_rows",  # an identical copy of a candle
    "conflicting_duplicate",  # a second row for one open time with another close
    "out_of_order",  # rows reversed
    "missing_candle",  # one closed candle left out (a gap)
)
FAULT_KINDS = HTTP_FAULTS + DATA_FAULTS
# The faults the bot must survive without losing or duplicating a prediction (issue 5).
RECOVERABLE_FAULTS = (
    "rate_limit",
    "server_error",
    "slow",
    "truncated_json",
    "nan_value",
    "duplicate_rows",
    "out_of_order",
)
WEIGHTS = {"klines": 2, "exchangeInfo": 20, "time": 1, "ping": 1}
_HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


class EmulatorClock:
    """Emulated server time in epoch ms: fixed (set/advance) or replaying with wall time."""

    def __init__(
        self,
        now_ms: int,
        *,
        step_ms: int,
        seconds_per_candle: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._anchor_ms = int(now_ms)
        self._anchor_wall = monotonic()
        self.step_ms = step_ms
        self.seconds_per_candle = seconds_per_candle

    @property
    def replaying(self) -> bool:
        """True when time advances by itself (one candle per `seconds_per_candle`)."""
        return self.seconds_per_candle is not None

    def now_ms(self) -> int:
        """The current emulated time."""
        with self._lock:
            if self.seconds_per_candle is None:
                return self._anchor_ms
            elapsed = self._monotonic() - self._anchor_wall
            return self._anchor_ms + int(elapsed / self.seconds_per_candle * self.step_ms)

    def set(self, now_ms: int) -> None:
        """Jump to `now_ms` (replay continues from there)."""
        with self._lock:
            self._anchor_ms = int(now_ms)
            self._anchor_wall = self._monotonic()

    def advance(self, delta_ms: int) -> None:
        """Move time forward by `delta_ms`."""
        self.set(self.now_ms() + int(delta_ms))


@dataclass(slots=True)
class RequestRecord:
    """One request, logged on arrival; `status` is 0 until answered (and for dropped ones)."""

    path: str
    params: dict[str, str]
    status: int
    fault: str | None
    server_ms: int


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json;charset=UTF-8"


class BinanceEmulator:
    """The emulator's state: candles per symbol, clock, fault queue and request log."""

    def __init__(
        self,
        candles: Mapping[str, pd.DataFrame],
        *,
        timeframe: str = "1h",
        now_ms: int | None = None,
        seconds_per_candle: float | None = None,
        fault_rate: float = 0.0,
        seed: int = 0,
        random_faults: tuple[str, ...] = RECOVERABLE_FAULTS,
        retry_after_seconds: int = 1,
        slow_seconds: float = 2.0,
    ) -> None:
        unknown = set(random_faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {FAULT_KINDS}")
        self.book = CandleBook(candles, timeframe=timeframe)
        step_ms = timeframe_to_ms(timeframe)
        if now_ms is None:  # default: the last candle is the forming one, half-way through
            now_ms = self.book.last_open_ms() + step_ms // 2
        self.clock = EmulatorClock(now_ms, step_ms=step_ms, seconds_per_candle=seconds_per_candle)
        self.fault_rate = fault_rate
        self.random_faults = random_faults
        self.retry_after_seconds = retry_after_seconds
        self.slow_seconds = slow_seconds
        self.requests: list[RequestRecord] = []
        self.base_url = ""
        self._rng = random.Random(seed)
        self._faults: deque[tuple[str, str]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._weight: Counter[int] = Counter()

    # ---------------------------------------------------------------- test controls
    def inject(self, *kinds: str, endpoint: str = "klines") -> None:
        """Queue one-shot faults, consumed in order by the next `endpoint` requests.

        "none" is a placeholder that lets one request through untouched.
        """
        for kind in kinds:
            if kind not in (*FAULT_KINDS, "none"):
                raise ValueError(f"unknown fault {kind!r}; use one of {FAULT_KINDS}")
        with self._lock:
            self._faults.extend((kind, endpoint) for kind in kinds)

    def pending_faults(self) -> int:
        """How many queued faults have not been served yet."""
        with self._lock:
            return len(self._faults)

    def count(self, endpoint: str) -> int:
        """Number of requests to a path ending with `endpoint` (e.g. "klines")."""
        with self._lock:
            return sum(record.path.endswith(endpoint) for record in self.requests)

    def counts(self) -> Counter[str]:
        """Number of requests per path."""
        with self._lock:
            return Counter(record.path for record in self.requests)

    def requests_to(self, endpoint: str) -> list[RequestRecord]:
        """The logged requests to a path ending with `endpoint`, oldest first."""
        with self._lock:
            return [record for record in self.requests if record.path.endswith(endpoint)]

    def closed_candles(self, symbol: str, timeframe: str | None = None) -> pd.DataFrame:
        """The candles closed at the current emulated time, exactly as served (canonical frame)."""
        frame = self.book.frame(symbol, timeframe)
        close_ms = index_to_epoch_ms(frame.index) + timeframe_to_ms(timeframe or self.book.base)
        return frame[close_ms <= self.clock.now_ms()]

    # ---------------------------------------------------------------- request handling
    def handle(self, path: str, params: dict[str, str]) -> _Reply | None:
        """Answer one GET; None means: drop the connection without a response."""
        now_ms = self.clock.now_ms()
        endpoint = path.rsplit("/", 1)[-1]
        fault = self._next_fault(endpoint) if endpoint in WEIGHTS else None
        record = RequestRecord(path, params, 0, fault, now_ms)
        with self._lock:
            self.requests.append(record)
        reply = self._route(path, params, now_ms, fault)
        if reply is not None:
            reply.headers["X-MBX-USED-WEIGHT-1M"] = str(self._add_weight(endpoint))
            record.status = reply.status
        return reply

    def _route(
        self, path: str, params: dict[str, str], now_ms: int, fault: str | None
    ) -> _Reply | None:
        if fault in HTTP_FAULTS and fault not in ("slow", "truncated_json"):
            return self._http_fault(fault)
        if fault == "slow":
            self._stopping.wait(self.slow_seconds)
        if path == "/api/v3/ping":
            reply = _json_reply(200, {})
        elif path == "/api/v3/time":
            reply = _json_reply(200, {"serverTime": now_ms})
        elif path == "/api/v3/exchangeInfo":
            reply = _json_reply(200, self.book.exchange_info(now_ms))
        elif path == "/api/v3/klines":
            reply = self._klines(params, now_ms, fault)
        else:
            reply = _json_reply(404, {"code": -1, "msg": f"Unknown path {path}"})
        if fault == "truncated_json" and reply.status == 200:
            reply.body = reply.body[: len(reply.body) // 2]
        return reply

    def _klines(self, params: dict[str, str], now_ms: int, fault: str | None) -> _Reply:
        symbol_id = params.get("symbol", "")
        interval = params.get("interval", "")
        if not self.book.has_symbol(symbol_id):
            return _json_reply(400, {"code": -1121, "msg": "Invalid symbol."})
        if not self.book.has_interval(symbol_id, interval):
            return _json_reply(400, {"code": -1120, "msg": "Invalid interval."})
        try:
            start = _optional_int(params.get("startTime"))
            end = _optional_int(params.get("endTime"))
            limit = min(max(int(params.get("limit", "500")), 1), 1000)
        except ValueError:
            return _json_reply(
                400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
            )
        rows = self.book.klines(
            symbol_id, interval, start=start, end=end, limit=limit, now_ms=now_ms
        )
        if fault in DATA_FAULTS:
            rows = _corrupt(rows, fault, now_ms)
        return _Reply(200, ("[" + ",".join(rows) + "]").encode())

    def _http_fault(self, fault: str) -> _Reply | None:
        retry = {"Retry-After": str(self.retry_after_seconds)}
        if fault == "rate_limit":
            msg = "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."
            return _json_reply(429, {"code": -1003, "msg": msg}, retry)
        if fault == "ban":
            return _json_reply(
                418, {"code": -1003, "msg": "Way too much request weight used."}, retry
            )
        if fault == "server_error":
            msg = "Timeout waiting for response from backend server."
            return _json_reply(500, {"code": -1001, "msg": msg})
        if fault in ("bad_gateway", "unavailable"):
            return _Reply(502 if fault == "bad_gateway" else 503, _HTML, content_type="text/html")
        if fault == "html":
            return _Reply(200, _HTML, content_type="text/html")
        if fault == "empty_body":
            return _Reply(200, b"")
        return None  # "disconnect"

    def _next_fault(self, endpoint: str) -> str | None:
        with self._lock:
            if self._faults and self._faults[0][1] == endpoint:
                kind = self._faults.popleft()[0]
                return None if kind == "none" else kind
            if endpoint == "klines" and self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.random_faults)
        return None

    def _add_weight(self, endpoint: str) -> int:
        minute = int(time.time() // 60)
        with self._lock:
            self._weight[minute] += WEIGHTS.get(endpoint, 1)
            return self._weight[minute]


def _optional_int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload, separators=(",", ":")).encode(), dict(headers or {}))


def _corrupt(rows: list[str], fault: str, now_ms: int) -> list[str]:
    """Apply one data fault to a page of serialised kline rows (a closed candle when possible)."""
    if not rows:
        return rows
    parsed = [json.loads(row) for row in rows]
    closed = [i for i, row in enumerate(parsed) if row[6] < now_ms]
    target = closed[len(closed) // 2] if closed else 0
    row = parsed[target]
    if fault == "nan_value":
        row[4] = "NaN"
    elif fault == "empty_value":
        row[2] = ""
    elif fault == "null_value":
        row[3] = None
    elif fault == "high_below_low":
        high, low = float(row[2]), float(row[3])
        row[2], row[3] = (row[3], row[2]) if high > low else (f"{low * 0.99:.8f}", row[3])
    elif fault == "duplicate_rows":
        parsed.insert(target + 1, list(row))
    elif fault == "conflicting_duplicate":
        parsed.insert(target + 1, [*row[:4], f"{float(row[4]) * 1.001:.8f}", *row[5:]])
    elif fault == "out_of_order":
        parsed.reverse()
    elif fault == "missing_candle":
        del parsed[target]
    return [json.dumps(item, separators=(",", ":")) for item in parsed]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as ccxt's requests session expects
    disable_nagle_algorithm = True  # TCP_NODELAY (NOTES.md: else ~40 ms per small reply)
    server: _Server

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query))
        reply = self.server.emulator.handle(parts.path, params)
        if reply is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("emulator %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("emulator: client %s went away", client_address, exc_info=True)

    def __init__(self, address: tuple[str, int], emulator: BinanceEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator


@contextmanager
def running_emulator(
    candles: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    symbol: str = "BTC/USDT",
    host: str = "127.0.0.1",
    port: int = 0,
    **options: Any,
) -> Iterator[BinanceEmulator]:
    """Serve `candles` (one frame for `symbol`, or {symbol: frame}) on 127.0.0.1 while in the block.

    `options` go to `BinanceEmulator` (timeframe, now_ms, seconds_per_candle, fault_rate, ...).
    """
    frames = {symbol: candles} if isinstance(candles, pd.DataFrame) else dict(candles)
    emulator = BinanceEmulator(frames, **options)
    server = _Server((host, port), emulator)
    emulator.base_url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield emulator
    finally:
        emulator._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def epoch_ms(moment: str | pd.Timestamp) -> int:
    """Epoch milliseconds of a timestamp string or Timestamp (read as UTC)."""
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(np.int64(stamp.value) // 1_000_000)
