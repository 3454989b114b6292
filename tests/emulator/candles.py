"""Candles the emulator serves: Binance kline rows per symbol and interval, forming one included."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.timeframes import timeframe_to_ms
from data.schema import OHLCV_COLUMNS, epoch_ms_to_index, index_to_epoch_ms

# Coarser intervals served by aggregating the base candles (when they divide evenly).
AGGREGATES = ("4h", "1d")


def market_id(symbol: str) -> str:
    """Binance's id of a ccxt spot symbol.

    >>> market_id("BTC/USDT")
    'BTCUSDT'
    """
    return symbol.replace("/", "")


def _fmt(values: np.ndarray) -> list[str]:
    return [f"{value:.8f}" for value in values.tolist()]


@dataclass(frozen=True, slots=True)
class _Series:
    """One symbol at one interval: open times, served strings and their exact float values."""

    interval_ms: int
    open_ms: np.ndarray
    values: np.ndarray  # float64 (n, 5), equal to the strings as parsed by a client
    rows: list[str]  # serialised closed kline rows


def _make_series(frame: pd.DataFrame, interval_ms: int) -> _Series:
    open_ms = index_to_epoch_ms(frame.index)
    text = {col: _fmt(frame[col].to_numpy(dtype="float64")) for col in OHLCV_COLUMNS}
    values = np.array([[float(text[col][i]) for col in OHLCV_COLUMNS] for i in range(len(frame))])
    rows = [
        _row_json(int(open_ms[i]), interval_ms, [text[col][i] for col in OHLCV_COLUMNS])
        for i in range(len(frame))
    ]
    return _Series(interval_ms, open_ms, values.reshape(-1, 5), rows)


def _row_json(open_ms: int, interval_ms: int, ohlcv: list[str]) -> str:
    volume, close = float(ohlcv[4]), float(ohlcv[3])
    row: list[Any] = [open_ms, *ohlcv, open_ms + interval_ms - 1, f"{volume * close:.8f}"]
    row += [int(volume * 10) + 1, f"{volume / 2:.8f}", f"{volume * close / 2:.8f}", "0"]
    return json.dumps(row, separators=(",", ":"))


def _aggregate(frame: pd.DataFrame, interval: str) -> pd.DataFrame:
    rule = {"4h": "4h", "1d": "1D"}[interval]
    grouped = frame.resample(rule, label="left", closed="left")
    out = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last"})
    out["volume"] = grouped["volume"].sum()
    return out.dropna()


def _build_intervals(frame: pd.DataFrame, timeframe: str) -> dict[str, _Series]:
    base_ms = timeframe_to_ms(timeframe)
    series = {timeframe: _make_series(frame, base_ms)}
    for interval in AGGREGATES:
        agg_ms = timeframe_to_ms(interval)
        if agg_ms > base_ms and agg_ms % base_ms == 0:
            series[interval] = _make_series(_aggregate(frame, interval), agg_ms)
    return series


class CandleBook:
    """Kline rows per Binance market id and interval, built once from canonical frames."""

    def __init__(self, candles: Mapping[str, pd.DataFrame], *, timeframe: str) -> None:
        if not candles:
            raise ValueError("the emulator needs candles for at least one symbol")
        self.base = timeframe
        self.symbols: dict[str, str] = {}  # market id -> ccxt symbol
        self._series: dict[str, dict[str, _Series]] = {}
        built: dict[int, dict[str, _Series]] = {}  # one frame served for many symbols is built once
        for symbol, frame in candles.items():
            if frame.empty:
                raise ValueError(f"no candles for {symbol}")
            ident = market_id(symbol)
            self.symbols[ident] = symbol
            if id(frame) not in built:
                built[id(frame)] = _build_intervals(frame, timeframe)
            self._series[ident] = built[id(frame)]

    def has_symbol(self, ident: str) -> bool:
        """True when the market id is served."""
        return ident in self._series

    def has_interval(self, ident: str, interval: str) -> bool:
        """True when the interval is served for this market id."""
        return interval in self._series[ident]

    def last_open_ms(self) -> int:
        """The newest base-candle open time over all symbols."""
        return max(int(s[self.base].open_ms[-1]) for s in self._series.values())

    def frame(self, symbol: str, timeframe: str | None = None) -> pd.DataFrame:
        """All candles of a symbol as served once closed (values rounded as in the JSON)."""
        series = self._series[market_id(symbol)][timeframe or self.base]
        frame = pd.DataFrame(series.values.copy(), columns=list(OHLCV_COLUMNS))
        frame.index = epoch_ms_to_index(series.open_ms)
        return frame

    def klines(
        self,
        ident: str,
        interval: str,
        *,
        start: int | None,
        end: int | None,
        limit: int,
        now_ms: int,
    ) -> list[str]:
        """Serialised kline rows as Binance answers them at `now_ms` (last one maybe forming)."""
        series = self._series[ident][interval]
        stop = int(np.searchsorted(series.open_ms, now_ms, side="right"))  # open <= now
        if end is not None:
            stop = min(stop, int(np.searchsorted(series.open_ms, end, side="right")))
        if start is not None:
            lo = int(np.searchsorted(series.open_ms, start, side="left"))
            stop = min(stop, lo + limit)
        else:
            lo = max(0, stop - limit)
        rows = series.rows[lo:stop] if stop > lo else []
        if rows and series.open_ms[stop - 1] + series.interval_ms > now_ms:
            rows[-1] = self._forming(ident, interval, stop - 1, now_ms)
        return rows

    def _forming(self, ident: str, interval: str, index: int, now_ms: int) -> str:
        """The still-open candle: values so far, changing with time (Binance has no flag)."""
        series = self._series[ident][interval]
        open_ms = int(series.open_ms[index])
        if interval != self.base:
            base = self._series[ident][self.base]
            lo = int(np.searchsorted(base.open_ms, open_ms, side="left"))
            hi = int(np.searchsorted(base.open_ms, now_ms, side="right"))
            parts = [self._partial(base, i, now_ms) for i in range(lo, hi)]
            values = np.array(parts)
            ohlcv = [values[0, 0], values[:, 1].max(), values[:, 2].min(), values[-1, 3]]
            ohlcv.append(values[:, 4].sum())
        else:
            ohlcv = self._partial(series, index, now_ms)
        return _row_json(open_ms, series.interval_ms, [f"{value:.8f}" for value in ohlcv])

    @staticmethod
    def _partial(series: _Series, index: int, now_ms: int) -> list[float]:
        open_, high, low, close, volume = series.values[index].tolist()
        fraction = min(max((now_ms - int(series.open_ms[index])) / series.interval_ms, 0.0), 1.0)
        close_now = open_ + (close - open_) * fraction
        high_now = max(open_, close_now) + (high - max(open_, close)) * fraction
        low_now = min(open_, close_now) - (min(open_, close) - low) * fraction
        return [open_, high_now, low_now, close_now, volume * fraction]

    def exchange_info(self, now_ms: int) -> dict[str, Any]:
        """A spot exchangeInfo document listing the served symbols (enough for ccxt)."""
        return {
            "timezone": "UTC",
            "serverTime": now_ms,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(ident, symbol) for ident, symbol in self.symbols.items()],
        }


def _symbol_info(ident: str, symbol: str) -> dict[str, Any]:
    base, quote = symbol.split("/")
    return {
        "symbol": ident,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
        ],
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
    }
