"""Real candle samples shipped inside the package: find, read, cut and write them (no network)."""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from core.errors import DataNotFoundError
from data.files import read_candle_file
from data.schema import OHLCV_COLUMNS, validate_ohlcv

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class CandleSample:
    """One bundled sample: which market, which candles (open times, inclusive), which file."""

    exchange_id: str
    symbol: str
    timeframe: str
    first: datetime
    last: datetime
    file_name: str
    source_file: str  # the CryptoDataDownload export it is cut from (see README.md here)

    @property
    def path(self) -> Path:
        """Where the sample is installed (inside the `data.samples` package)."""
        return SAMPLES_DIR / self.file_name

    def describe(self) -> str:
        """The data-source line of reports run on this sample.

        >>> BTC_USDT_1H.describe()
        'bundled sample BTC/USDT 1h 2019-06-01..2021-06-09 (binance, not live data)'
        """
        return (
            f"bundled sample {self.symbol} {self.timeframe} "
            f"{self.first:%Y-%m-%d}..{self.last:%Y-%m-%d} ({self.exchange_id}, not live data)"
        )


# About two years of the newest complete candles of the shared export: 17,748 hourly candles,
# 4 walk-forward folds with the default 8760 + 720 + 2000 windows. The export's last candle
# (2021-06-10 00:00) was still trading when exported, so the sample stops an hour earlier.
BTC_USDT_1H = CandleSample(
    exchange_id="binance",
    symbol="BTC/USDT",
    timeframe="1h",
    first=datetime(2019, 6, 1, tzinfo=UTC),
    last=datetime(2021, 6, 9, 23, tzinfo=UTC),
    file_name="BTC_USDT-1h-binance.csv.gz",
    source_file="Binance_BTCUSDT_1h.csv",
)
SAMPLES: tuple[CandleSample, ...] = (BTC_USDT_1H,)


def find_sample(symbol: str, timeframe: str) -> CandleSample | None:
    """The bundled sample of this market and timeframe, if there is one.

    >>> find_sample("BTC/USDT", "1h") is BTC_USDT_1H, find_sample("ETH/USDT", "1h")
    (True, None)
    """
    return next((s for s in SAMPLES if (s.symbol, s.timeframe) == (symbol, timeframe)), None)


def read_sample(sample: CandleSample) -> pd.DataFrame:
    """The sample's candles, canonical and validated.

    Raises:
        DataNotFoundError: the file is not installed (a broken install; reinstall the package).
    """
    if not sample.path.is_file():
        raise DataNotFoundError(
            f"the bundled sample {sample.path} is missing; reinstall crypto-predictor or pass "
            "--data FILE"
        )
    raw = read_candle_file(sample.path)
    frame = raw.frame[list(OHLCV_COLUMNS)].sort_index()
    return validate_ohlcv(frame, timeframe=sample.timeframe)


def cut_sample(clean: pd.DataFrame, sample: CandleSample) -> pd.DataFrame:
    """The sample's span of already cleaned candles (open times first..last, inclusive)."""
    index = pd.DatetimeIndex(clean.index)
    span = (index >= pd.Timestamp(sample.first)) & (index <= pd.Timestamp(sample.last))
    return validate_ohlcv(clean.loc[span, list(OHLCV_COLUMNS)], timeframe=sample.timeframe)


def sample_csv(frame: pd.DataFrame) -> str:
    """Plain OHLCV CSV text: ISO 8601 UTC open times and shortest round-trip floats.

    >>> idx = pd.DatetimeIndex(["2020-01-01"], tz="UTC", name="timestamp")
    >>> sample_csv(pd.DataFrame({c: [1.5] for c in OHLCV_COLUMNS}, index=idx)).splitlines()
    ['timestamp,open,high,low,close,volume', '2020-01-01T00:00:00Z,1.5,1.5,1.5,1.5,1.5']
    """
    out = frame[list(OHLCV_COLUMNS)].reset_index()
    out["timestamp"] = pd.DatetimeIndex(frame.index).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(out.to_csv(index=False, lineterminator="\n"))


def write_sample(frame: pd.DataFrame, path: Path) -> None:
    """Write `sample_csv(frame)` gzipped without a file name or time stamp (reproducible)."""
    data = gzip.compress(sample_csv(frame).encode("ascii"), compresslevel=9, mtime=0)
    Path(path).write_bytes(data)
    logger.info("Wrote %d candles to %s (%.0f kB)", len(frame), path, len(data) / 1e3)
