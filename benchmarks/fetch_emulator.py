"""Benchmark: fetch 30,000 hourly candles via the real ccxt client and the local emulator.

Run: .venv/bin/python -m benchmarks.fetch_emulator
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from core.settings import ExchangeSettings
from data.exchange import CcxtCandleSource
from tests.emulator import running_emulator
from tests.factories import make_ohlcv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candles", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    candles = make_ohlcv(args.candles + 1)  # + the forming candle
    since = candles.index[0].to_pydatetime()
    started = time.perf_counter()
    with running_emulator(candles) as emulator:
        print(f"emulator ready in {time.perf_counter() - started:.2f} s ({emulator.base_url})")
        seconds = []
        for _ in range(args.repeat):
            source = CcxtCandleSource(ExchangeSettings(base_url=emulator.base_url))
            before = emulator.count("klines")
            tick = time.perf_counter()
            frame = source.fetch_candles("BTC/USDT", "1h", since=since)
            seconds.append(time.perf_counter() - tick)
            assert len(frame) == args.candles, len(frame)
            pages = emulator.count("klines") - before
    best, median = min(seconds), statistics.median(seconds)
    print(
        f"fetched {args.candles:,} candles in {pages} pages: median {median:.2f} s "
        f"({args.candles / median:,.0f} candles/s), best {best:.2f} s "
        f"({args.candles / best:,.0f} candles/s); runs {[round(s, 2) for s in seconds]} "
        f"at {datetime.now(UTC):%Y-%m-%d %H:%M}Z"
    )


if __name__ == "__main__":
    main()
