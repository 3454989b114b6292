"""Regenerate the bundled samples from the shared CryptoDataDownload exports (reproducibly).

    python -m data.samples                      # reads ../shared/data, rewrites data/samples/*.gz
    python -m data.samples --check              # exit 1 if a shipped sample differs from its source

The export is read and cleaned by the project's own reader and quality layer (default policies),
then cut to the sample's span; the same export always gives the same CSV text.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import sys
from pathlib import Path

import pandas as pd

from core.logging import setup_logging
from core.settings import LoggingSettings, QualitySettings
from data.files import read_candle_file
from data.quality import clean_candles
from data.samples import SAMPLES, CandleSample, cut_sample, sample_csv, write_sample

logger = logging.getLogger(__name__)

DEFAULT_SOURCE_DIR = Path("../shared/data")


def build_sample(sample: CandleSample, source_dir: Path) -> pd.DataFrame:
    """The sample's candles, made from its source export in `source_dir`."""
    source = source_dir / sample.source_file
    raw = read_candle_file(source)
    clean = clean_candles(
        raw.frame,
        timeframe=sample.timeframe,
        cfg=QualitySettings(),
        rows_read=raw.rows_read,
        symbol=sample.symbol,
        source=str(source),
        format_name=raw.format_name,
    )
    return cut_sample(clean.frame, sample)


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, compare) every bundled sample; the exit code says if all match."""
    parser = argparse.ArgumentParser(prog="python -m data.samples", description=__doc__)
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE_DIR)
    parser.add_argument("--out-dir", type=Path, default=None, help="default: next to this file")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    setup_logging(LoggingSettings(level="WARNING" if args.check else "INFO"))
    status = 0
    for sample in SAMPLES:
        frame = build_sample(sample, args.source_dir)
        target = (args.out_dir or sample.path.parent) / sample.file_name
        if not args.check:
            write_sample(frame, target)
            continue
        # Compare the CSV text, not the bytes: gzip output may differ between zlib builds.
        shipped = gzip.decompress(target.read_bytes()).decode("ascii") if target.is_file() else ""
        if shipped != sample_csv(frame):
            logger.error("%s differs from %s; regenerate it", target, sample.source_file)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
