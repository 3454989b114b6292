"""Clean candles and report on them: order, units, duplicates, gaps, OHLC invariants, jumps."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd

from core.errors import CandleGapError, DataValidationError
from core.settings import QualitySettings
from core.timeframes import timeframe_to_ms
from data.files import epoch_to_ms, infer_timeframe
from data.quality_report import (
    DataQualityReport,
    Gap,
    QualityIssue,
    load_report,
    report_table,
    save_report,
)
from data.schema import (
    INDEX_NAME,
    OHLCV_COLUMNS,
    TIMESTAMP_UNIT,
    epoch_ms_to_index,
    index_to_epoch_ms,
    row_problems,
    validate_ohlcv,
)

__all__ = [
    "CleanCandles",
    "DataQualityReport",
    "Gap",
    "QualityIssue",
    "clean_candles",
    "find_gaps",
    "jump_score",
    "load_report",
    "report_table",
    "save_report",
]

logger = logging.getLogger(__name__)

PRICES = ["open", "high", "low", "close"]
JUMP_NEIGHBOURS = 5
"""Closes on each side whose median is the local reference price of the jump check."""
WICK_FACTOR = 2.0
"""High/low may stray WICK_FACTOR times farther than open/close before a candle is a jump."""
UNFINISHED_VOLUME_RATIO = 0.2
UNFINISHED_LOOKBACK_BARS = 24
MAJOR_CONFLICT_REL = 0.001
"""Duplicates whose values differ by more than 0.1 % are more than rounding."""


@dataclass(frozen=True, slots=True)
class CleanCandles:
    """Canonical candles (they pass `validate_ohlcv`) and the report of how they were made."""

    frame: pd.DataFrame
    report: DataQualityReport


@dataclass(slots=True)
class _Findings:
    """Counts and examples collected while cleaning (internal, mutable)."""

    max_examples: int
    counts: dict[str, int] = field(default_factory=dict)
    examples: list[QualityIssue] = field(default_factory=list)
    rows_in: int = 0
    first_ts: pd.Timestamp | None = None
    last_ts: pd.Timestamp | None = None
    distinct: int = 0
    repaired: int = 0
    gaps: tuple[Gap, ...] = ()
    unfinished: bool = False

    def add(
        self,
        check: str,
        stamps: Sequence[pd.Timestamp],
        details: Iterable[str],
        *,
        count: int | None = None,
    ) -> None:
        """Count `check` (len(stamps) unless `count` is given) and keep its first examples."""
        self.counts[check] = self.counts.get(check, 0) + (len(stamps) if count is None else count)
        for stamp, detail in zip(stamps[: self.max_examples], details, strict=False):
            self.examples.append(QualityIssue(check, pd.Timestamp(stamp), detail))


def clean_candles(
    raw: pd.DataFrame,
    *,
    timeframe: str,
    cfg: QualitySettings,
    rows_read: int | None = None,
    symbol: str = "",
    source: str = "",
    format_name: str = "",
    notes: Sequence[str] = (),
) -> CleanCandles:
    """Apply the quality policies of `cfg` to raw candles and report what was found and done.

    `raw` has OHLCV columns, a timestamp index (any order, duplicates allowed; epoch numbers in
    s/ms/us are normalised) and optionally an int `precision` column used by `keep_precise`.

    Raises:
        DataValidationError: a problem whose policy is `fail`, or candles off the timeframe grid.
        CandleGapError: gaps with `gaps: fail`.
    """
    label = " ".join(part for part in (symbol, timeframe, source) if part)
    findings = _Findings(cfg.max_examples)
    frame = _canonical_input(raw)
    findings.rows_in = len(frame)
    if len(frame):
        findings.first_ts, findings.last_ts = _index(frame).min(), _index(frame).max()
    _check_grid(_index(frame), timeframe, label)
    frame = _resolve_duplicates(frame, cfg, findings)
    findings.distinct = len(frame)
    frame = _apply_row_rules(frame, cfg, findings)
    frame = _apply_jump_rule(frame, cfg, findings)
    findings.gaps = _apply_gap_rule(_index(frame), timeframe, cfg, label)
    findings.unfinished = _check_unfinished_last(frame, findings)
    clean = validate_ohlcv(frame, timeframe=timeframe)
    report = _build_report(
        findings,
        clean,
        cfg,
        rows_read=len(raw) if rows_read is None else rows_read,
        meta=(symbol, timeframe, source, format_name),
        notes=tuple(notes),
    )
    _log_report(report, label)
    return CleanCandles(clean, report)


def _build_report(
    findings: _Findings,
    clean: pd.DataFrame,
    cfg: QualitySettings,
    *,
    rows_read: int,
    meta: tuple[str, str, str, str],
    notes: tuple[str, ...],
) -> DataQualityReport:
    count = findings.counts.get
    symbol, timeframe, source, format_name = meta
    return DataQualityReport(
        symbol=symbol,
        timeframe=timeframe,
        source=source,
        format_name=format_name,
        rows_read=rows_read,
        distinct_candles=findings.distinct,
        first_timestamp=findings.first_ts,
        last_timestamp=findings.last_ts,
        duplicated_timestamps=count("duplicate", 0),
        duplicate_rows_removed=findings.rows_in - findings.distinct,
        duplicate_conflicts=count("duplicate_conflict", 0),
        duplicate_major_conflicts=count("duplicate_major_conflict", 0),
        gaps=findings.gaps,
        missing_bars=sum(gap.missing_bars for gap in findings.gaps),
        non_finite_rows=count("non_finite", 0),
        non_positive_rows=count("non_positive", 0),
        high_below_low_rows=count("high_below_low", 0),
        body_outside_range_rows=count("body_outside_range", 0),
        jump_rows=count("jump", 0),
        unfinished_last_candle=findings.unfinished,
        rows_dropped=findings.distinct - len(clean),
        rows_repaired=findings.repaired,
        rows_kept=len(clean),
        first_kept=clean.index[0] if len(clean) else None,
        last_kept=clean.index[-1] if len(clean) else None,
        policies=tuple(sorted((name, str(value)) for name, value in cfg.model_dump().items())),
        examples=tuple(_gap_examples(findings.gaps, cfg.max_examples) + findings.examples),
        notes=notes,
    )


def find_gaps(index: pd.DatetimeIndex, timeframe: str) -> tuple[Gap, ...]:
    """Runs of missing candles between the first and last candle of `index`.

    >>> gap = find_gaps(pd.DatetimeIndex(["2021-01-01 00:00", "2021-01-01 03:00"], tz="UTC"), "1h")
    >>> gap[0].start.hour, gap[0].end.hour, gap[0].missing_bars
    (1, 2, 2)
    """
    step = timeframe_to_ms(timeframe)
    epoch_ms = np.unique(index_to_epoch_ms(index))
    steps = np.diff(epoch_ms)
    at = np.flatnonzero(steps > step)
    return tuple(
        Gap(
            pd.Timestamp(int(epoch_ms[i]) + step, unit="ms", tz="UTC"),
            pd.Timestamp(int(epoch_ms[i + 1]) - step, unit="ms", tz="UTC"),
            int(steps[i] // step) - 1,
        )
        for i in at
    )


# ------------------------------------------------------------------ cleaning steps
def _apply_gap_rule(
    index: pd.DatetimeIndex, timeframe: str, cfg: QualitySettings, label: str
) -> tuple[Gap, ...]:
    """Gaps are only reported (never filled: inventing candles would fake data)."""
    gaps = find_gaps(index, timeframe)
    if gaps and cfg.gaps == "fail":
        first = gaps[0]
        raise CandleGapError(
            f"{label}: {len(gaps)} gap(s), {sum(g.missing_bars for g in gaps)} missing candles, "
            f"first {first.start:%Y-%m-%d %H:%M}Z..{first.end:%Y-%m-%d %H:%M}Z; re-fetch the "
            "range or set data.quality.gaps: report"
        )
    return gaps


def _canonical_input(raw: pd.DataFrame) -> pd.DataFrame:
    """OHLCV float64 + `precision` + `_pos` (read order), UTC ms index; units normalised."""
    missing = [column for column in OHLCV_COLUMNS if column not in raw.columns]
    if missing:
        raise DataValidationError(
            f"candles lack columns {missing}; expected {list(OHLCV_COLUMNS)} "
            f"(got {list(raw.columns)})"
        )
    frame = raw[list(OHLCV_COLUMNS)].astype("float64")
    precision = raw["precision"] if "precision" in raw.columns else 0
    frame["precision"] = np.asarray(precision, dtype="int64") * np.ones(len(raw), dtype="int64")
    frame["_pos"] = np.arange(len(raw), dtype="int64")
    frame.index = _to_utc_index(raw.index)
    return frame


def _index(frame: pd.DataFrame) -> pd.DatetimeIndex:
    """The frame's index, typed (always a DatetimeIndex after `_canonical_input`)."""
    return cast(pd.DatetimeIndex, frame.index)


def _to_utc_index(index: pd.Index) -> pd.DatetimeIndex:
    if isinstance(index, pd.DatetimeIndex):
        utc = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        return utc.as_unit(TIMESTAMP_UNIT).rename(INDEX_NAME)
    if pd.api.types.is_numeric_dtype(index.dtype):
        epoch_ms, _ = epoch_to_ms(np.asarray(index, dtype="float64"))
        return epoch_ms_to_index(epoch_ms)
    raise DataValidationError(
        f"candle index must be datetimes or epoch numbers, got dtype {index.dtype}"
    )


def _check_grid(index: pd.DatetimeIndex, timeframe: str, label: str) -> None:
    off = np.flatnonzero(index_to_epoch_ms(index) % timeframe_to_ms(timeframe) != 0)
    if len(off):
        guess = infer_timeframe(index)
        raise DataValidationError(
            f"{label}: {len(off)} candle(s) are not on the {timeframe} grid, first at "
            f"{index[off[0]]:%Y-%m-%d %H:%M:%S}Z; is the timeframe right? "
            f"(the candles look like {guess or 'an unsupported timeframe'})"
        )


def _resolve_duplicates(
    frame: pd.DataFrame, cfg: QualitySettings, findings: _Findings
) -> pd.DataFrame:
    """Sort by time and keep one row per timestamp (the most precise, then the last read)."""
    epoch_ms = index_to_epoch_ms(_index(frame))
    # np.lexsort sorts by the LAST key first: time, then precision, then read order.
    keys = [frame["_pos"].to_numpy()]
    if cfg.duplicates == "keep_precise":
        keys.append(frame["precision"].to_numpy())
    frame = frame.iloc[np.lexsort((*keys, epoch_ms))]
    doubled = _index(frame).duplicated(keep=False)
    if not doubled.any():
        return frame
    _record_duplicates(frame[doubled], findings)
    if cfg.duplicates == "fail":
        raise DataValidationError(
            f"{findings.counts['duplicate']} duplicated timestamp(s), first at "
            f"{_index(frame)[doubled][0]:%Y-%m-%d %H:%M}Z; "
            "set data.quality.duplicates: keep_precise"
        )
    return frame[~_index(frame).duplicated(keep="last")]


def _record_duplicates(rows: pd.DataFrame, findings: _Findings) -> None:
    # Prices only: volumes of two exports differ by rounding in nearly every pair (all 2,649 in
    # the shared BTC file), so counting them would hide the real conflicts.
    grouped = rows[PRICES].groupby(level=0)
    spread = grouped.max() - grouped.min()
    rel = (spread / grouped.max().abs().replace(0.0, np.nan)).fillna(0.0).max(axis=1)
    price_conflict = spread.gt(0).any(axis=1)
    major = rel > MAJOR_CONFLICT_REL
    # Examples: the largest differences first (rounding-only pairs are the boring majority).
    worst = rel[price_conflict].sort_values(ascending=False, kind="stable")
    sizes = grouped.size().reindex(worst.index).to_numpy()
    details = (
        f"{n} rows, prices differ by up to {value * 100:.2g} %"
        for n, value in zip(sizes, worst, strict=True)
    )
    findings.counts["duplicate"] = len(spread)
    findings.add("duplicate_conflict", list(worst.index), details, count=int(price_conflict.sum()))
    findings.counts["duplicate_major_conflict"] = int(major.sum())


def _apply_row_rules(
    frame: pd.DataFrame, cfg: QualitySettings, findings: _Findings
) -> pd.DataFrame:
    """Non-finite / non-positive values and OHLC invariants, per their policies."""
    problems = row_problems(frame)
    bad_value = (problems["non_finite"] | problems["non_positive"]).to_numpy()
    invalid = (problems["high_below_low"] | problems["body_outside_range"]).to_numpy()
    for check in ("non_finite", "non_positive", "high_below_low", "body_outside_range"):
        stamps = _index(frame)[problems[check].to_numpy()]
        findings.add(check, list(stamps), (_describe_row(frame, ts) for ts in stamps))
    _fail_if(bad_value, _index(frame), cfg.non_positive, "non-finite or non-positive values")
    _fail_if(invalid, _index(frame), cfg.invalid_ohlc, "an invalid OHLC range (high/low)")
    if cfg.invalid_ohlc == "repair":
        # Widen high/low to contain open and close (only rows whose values are usable).
        fix = invalid & ~bad_value
        frame = frame.copy()
        values = frame.loc[fix, PRICES]
        frame.loc[fix, "high"] = values.max(axis=1)
        frame.loc[fix, "low"] = values.min(axis=1)
        findings.repaired = int(fix.sum())
        invalid = np.zeros(len(frame), dtype=bool)
    return frame[~(bad_value | invalid)]


def jump_score(frame: pd.DataFrame, *, neighbours: int = JUMP_NEIGHBOURS) -> np.ndarray:
    """Per candle, how far its prices sit from the neighbouring closes, in log units.

    The reference is the median close of the `neighbours` candles before it, or of those after
    it, whichever is closer: a bogus print sits far from both sides, while a real crash or rally
    stays close to one of them (the prices it comes from or the prices it leads to). Open and
    close count fully; high and low (single-trade wicks, which reach much farther in real flash
    crashes: -0.73 log on ETH 2017-08-22, -0.51 on BNB 2017-12-22) count at 1/WICK_FACTOR.

    >>> frame = pd.DataFrame({"open": [10, 30, 10], "high": [10, 30, 10],
    ...                       "low": [10, 10, 10], "close": [10, 10, 10.0]})
    >>> jump_score(frame).round(2).tolist()
    [0.0, 1.1, 0.0]
    """
    close = frame["close"]
    before = close.shift(1).rolling(neighbours, min_periods=1).median().to_numpy()
    after = close[::-1].shift(1).rolling(neighbours, min_periods=1).median()[::-1].to_numpy()
    prices = frame[PRICES].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        dev_before = np.abs(np.log(prices / before[:, None]))
        dev_after = np.abs(np.log(prices / after[:, None]))
    # One side is missing at the edges (NaN): fmin then uses the other side.
    deviation = np.nan_to_num(np.fmin(dev_before, dev_after), nan=0.0)
    body = deviation[:, [0, 3]].max(axis=1)
    wick = deviation[:, [1, 2]].max(axis=1)
    return np.maximum(body, wick / WICK_FACTOR)


def _apply_jump_rule(
    frame: pd.DataFrame, cfg: QualitySettings, findings: _Findings
) -> pd.DataFrame:
    score = jump_score(frame)
    flagged = score > cfg.jump_threshold_log
    stamps = _index(frame)[flagged]
    details = (
        f"{_describe_row(frame, ts)}; {value:.2f} log from neighbouring closes"
        for ts, value in zip(stamps, score[flagged], strict=True)
    )
    findings.add("jump", list(stamps), details)
    _fail_if(flagged, _index(frame), cfg.jumps, "an implausible jump against neighbouring candles")
    return frame[~flagged] if cfg.jumps == "drop" else frame


def _check_unfinished_last(frame: pd.DataFrame, findings: _Findings) -> bool:
    """Warn (never drop) when the last candle looks unfinished.

    Rule: its volume is below 20 % of the median volume of the 24 candles before it. Finished
    candles rarely trade that little (0.5 % of BTC 1h candles 2017-2021, mostly in outages);
    an export cut mid-candle usually does (the shared files end at 0.6-16 % of that median).
    """
    volume = frame["volume"].to_numpy()
    if len(volume) < 6:
        return False
    median = float(np.median(volume[-UNFINISHED_LOOKBACK_BARS - 1 : -1]))
    if median <= 0 or volume[-1] >= UNFINISHED_VOLUME_RATIO * median:
        return False
    detail = (
        f"volume {volume[-1]:.6g} is {volume[-1] / median:.1%} of the median of the previous "
        f"{UNFINISHED_LOOKBACK_BARS} candles ({median:.6g}; rule: "
        f"< {UNFINISHED_VOLUME_RATIO:.0%}), probably still trading when exported"
    )
    findings.add("unfinished_last_candle", [_index(frame)[-1]], [detail])
    return True


def _fail_if(mask: np.ndarray, index: pd.DatetimeIndex, policy: str, what: str) -> None:
    if policy == "fail" and mask.any():
        raise DataValidationError(
            f"{int(mask.sum())} candle(s) have {what}, first at {index[mask][0]:%Y-%m-%d %H:%M}Z; "
            "fix the source or choose the drop/repair policy in data.quality"
        )


def _describe_row(frame: pd.DataFrame, stamp: pd.Timestamp) -> str:
    values = frame.loc[stamp, list(OHLCV_COLUMNS)].to_numpy(dtype="float64").ravel()
    return " ".join(
        f"{name[0]}={value:.8g}" for name, value in zip(OHLCV_COLUMNS, values, strict=True)
    )


def _gap_examples(gaps: tuple[Gap, ...], limit: int) -> list[QualityIssue]:
    return [
        QualityIssue(
            "gap", gap.start, f"{gap.missing_bars} missing, up to {gap.end:%Y-%m-%d %H:%M}Z"
        )
        for gap in gaps[:limit]
    ]


# ------------------------------------------------------------------ reporting
def _log_report(report: DataQualityReport, label: str) -> None:
    """One WARNING per kind of problem found (counts, not rows), one INFO summary."""
    warnings = [
        (
            report.duplicated_timestamps,
            f"duplicated timestamps resolved by {dict(report.policies)['duplicates']} "
            f"({report.duplicate_conflicts} with differing prices, "
            f"{report.duplicate_major_conflicts} by more than 0.1 %)",
        ),
        (len(report.gaps), f"gaps with {report.missing_bars} missing candles (not filled)"),
        (report.non_finite_rows, "candles with NaN/inf values"),
        (report.non_positive_rows, "candles with non-positive prices or negative volume"),
        (report.invalid_ohlc_rows, "candles with high/low not containing open/close"),
        (report.jump_rows, "candles with an implausible jump against their neighbours"),
        (int(report.unfinished_last_candle), "suspect unfinished last candle (kept)"),
    ]
    for count, text in warnings:
        if count:
            logger.warning("%s: %d %s", label, count, text)
    logger.info(
        "%s: %d rows read, %d kept (%s .. %s), %d dropped, %d repaired",
        label,
        report.rows_read,
        report.rows_kept,
        report.first_kept,
        report.last_kept,
        report.rows_dropped,
        report.rows_repaired,
    )
