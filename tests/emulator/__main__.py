"""Run the Binance emulator as a process: prints `EMULATOR_URL <url>`, stops on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import pandas as pd

from core.settings import QualitySettings
from data.files import read_candle_file
from data.quality import clean_candles
from tests.emulator.binance import FAULT_KINDS, RECOVERABLE_FAULTS, epoch_ms, running_emulator
from tests.factories import make_ohlcv

logger = logging.getLogger("tests.emulator")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.emulator", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, help="candle file (CryptoDataDownload, Binance, ...)")
    source.add_argument(
        "--synthetic", type=int, default=2000, help="random-walk candles (no --data)"
    )
    parser.add_argument("--symbol", action="append", help="ccxt symbol; repeat for several")
    parser.add_argument("--timeframe", default="1h")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--now", help="fixed server time (ISO, UTC); default: mid last candle")
    parser.add_argument("--replay-start", help="replay from this candle open (ISO, UTC)")
    parser.add_argument("--seconds-per-candle", type=float, default=1.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-kinds", default=",".join(RECOVERABLE_FAULTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds on 429/418")
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    kinds = tuple(kind for kind in args.fault_kinds.split(",") if kind)
    if not set(kinds) <= set(FAULT_KINDS):
        parser.error(f"--fault-kinds: unknown {sorted(set(kinds) - set(FAULT_KINDS))}")
    args.fault_kinds = kinds
    return args


def _load_candles(args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    symbols = args.symbol or ["BTC/USDT"]
    if args.data is not None:
        raw = read_candle_file(args.data)
        clean = clean_candles(
            raw.frame,
            timeframe=args.timeframe,
            cfg=QualitySettings(),
            rows_read=raw.rows_read,
            source=str(args.data),
            format_name=raw.format_name,
        )
        return dict.fromkeys(symbols, clean.frame)
    return {
        symbol: make_ohlcv(args.synthetic, args.timeframe, seed=i)
        for i, symbol in enumerate(symbols)
    }


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; return the exit code."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args = _parse_args(argv)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    replaying = args.replay_start is not None
    now = args.replay_start or args.now
    with running_emulator(
        _load_candles(args),
        symbol=(args.symbol or ["BTC/USDT"])[0],
        host=args.host,
        port=args.port,
        timeframe=args.timeframe,
        now_ms=epoch_ms(now) if now else None,
        seconds_per_candle=args.seconds_per_candle if replaying else None,
        fault_rate=args.fault_rate,
        seed=args.seed,
        random_faults=args.fault_kinds,
        retry_after_seconds=args.retry_after,
        slow_seconds=args.slow_seconds,
    ) as emulator:
        sys.stdout.write(f"EMULATOR_URL {emulator.base_url}\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
        logger.info("emulator stopping after %d requests", len(emulator.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
