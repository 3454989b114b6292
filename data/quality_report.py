"""The data-quality report: its dataclasses, JSON round-trip, rich table and atomic save."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from data.schema import TIMESTAMP_UNIT

_STAMP_FIELDS = ("first_timestamp", "last_timestamp", "first_kept", "last_kept")


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing candles: `start`/`end` are the first and last MISSING open times."""

    start: pd.Timestamp
    end: pd.Timestamp
    missing_bars: int


@dataclass(frozen=True, slots=True)
class QualityIssue:
    """One example of a problem, for the report."""

    check: str
    timestamp: pd.Timestamp
    detail: str


@dataclass(frozen=True, slots=True)
class DataQualityReport:
    """What was read, what was wrong, and what the policies did (counts + first examples).

    `rows_read = duplicate_rows_removed + rows_dropped + rows_kept`. Gaps are those of the
    cleaned candles (so a dropped row in the middle shows up as a gap too).
    """

    symbol: str
    timeframe: str
    source: str
    format_name: str
    rows_read: int
    distinct_candles: int
    first_timestamp: pd.Timestamp | None
    last_timestamp: pd.Timestamp | None
    duplicated_timestamps: int
    duplicate_rows_removed: int
    duplicate_conflicts: int
    duplicate_major_conflicts: int
    gaps: tuple[Gap, ...]
    missing_bars: int
    non_finite_rows: int
    non_positive_rows: int
    high_below_low_rows: int
    body_outside_range_rows: int
    jump_rows: int
    unfinished_last_candle: bool
    rows_dropped: int
    rows_repaired: int
    rows_kept: int
    first_kept: pd.Timestamp | None
    last_kept: pd.Timestamp | None
    policies: tuple[tuple[str, str], ...]
    examples: tuple[QualityIssue, ...]
    notes: tuple[str, ...] = ()

    @property
    def invalid_ohlc_rows(self) -> int:
        """Rows breaking low <= open, close <= high in either way."""
        return self.high_below_low_rows + self.body_outside_range_rows

    def examples_for(self, check: str) -> tuple[QualityIssue, ...]:
        """The recorded examples of one check."""
        return tuple(issue for issue in self.examples if issue.check == check)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (timestamps as ISO 8601 UTC strings)."""
        out = {item.name: getattr(self, item.name) for item in fields(self)}
        for name in _STAMP_FIELDS:
            out[name] = _iso(out[name])
        out["gaps"] = [
            {"start": _iso(g.start), "end": _iso(g.end), "missing_bars": g.missing_bars}
            for g in self.gaps
        ]
        out["examples"] = [
            {"check": e.check, "timestamp": _iso(e.timestamp), "detail": e.detail}
            for e in self.examples
        ]
        out["policies"] = dict(self.policies)
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataQualityReport:
        """Rebuild a report from `to_dict` output."""
        values = dict(data)
        for name in _STAMP_FIELDS:
            values[name] = _parse_ts(values.get(name))
        values["gaps"] = tuple(
            Gap(_ts(g["start"]), _ts(g["end"]), int(g["missing_bars"])) for g in values["gaps"]
        )
        values["examples"] = tuple(
            QualityIssue(e["check"], _ts(e["timestamp"]), e["detail"]) for e in values["examples"]
        )
        values["policies"] = tuple(sorted((str(k), str(v)) for k, v in values["policies"].items()))
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def report_table(report: DataQualityReport) -> Table:
    """The report as a rich table: check, what was found, the action taken, first examples."""
    title = " ".join(
        part for part in ("Data quality:", report.symbol, report.timeframe, report.source) if part
    )
    table = Table(title=f"{title} ({report.format_name or 'frame'})", title_justify="left")
    for column in ("Check", "Found", "Action", "First examples"):
        table.add_column(column, overflow="fold")
    for row in (*_summary_rows(report), *_problem_rows(report)):
        table.add_row(*row)
    table.add_row(
        "Result",
        f"{report.rows_kept:,} candles kept",
        f"{report.rows_dropped:,} dropped, {report.rows_repaired:,} repaired",
        f"{_short(report.first_kept)} .. {_short(report.last_kept)}",
    )
    for note in report.notes:
        table.add_row("Note", note, "", "")
    return table


def _summary_rows(report: DataQualityReport) -> list[tuple[str, str, str, str]]:
    read_range = f"{_short(report.first_timestamp)} .. {_short(report.last_timestamp)}"
    return [
        ("Rows read", f"{report.rows_read:,}", "", ""),
        ("Range as read (UTC)", read_range, "", ""),
        ("Distinct candles", f"{report.distinct_candles:,}", "", ""),
    ]


def _problem_rows(report: DataQualityReport) -> list[tuple[str, str, str, str]]:
    policy = dict(report.policies)
    duplicates = (
        f"{report.duplicated_timestamps:,} ({report.duplicate_conflicts:,} differ in price, "
        f"{report.duplicate_major_conflicts:,} by > 0.1 %)"
    )
    unfinished = "suspect" if report.unfinished_last_candle else "no"
    return [
        (
            "Duplicated timestamps",
            duplicates,
            f"{policy.get('duplicates')}: {report.duplicate_rows_removed:,} rows removed",
            _examples(report, "duplicate_conflict"),
        ),
        (
            "Gaps",
            f"{len(report.gaps):,} ({report.missing_bars:,} missing candles)",
            f"{policy.get('gaps')} (never filled)",
            _examples(report, "gap"),
        ),
        (
            "NaN / non-positive",
            f"{report.non_finite_rows + report.non_positive_rows:,}",
            str(policy.get("non_positive")),
            _examples(report, "non_finite", "non_positive"),
        ),
        (
            "Invalid OHLC range",
            f"{report.invalid_ohlc_rows:,}",
            str(policy.get("invalid_ohlc")),
            _examples(report, "high_below_low", "body_outside_range"),
        ),
        (
            "Implausible jumps",
            f"{report.jump_rows:,}",
            f"{policy.get('jumps')} (> {policy.get('jump_threshold_log')} log)",
            _examples(report, "jump"),
        ),
        (
            "Unfinished last candle",
            unfinished,
            "warn only (kept)",
            _examples(report, "unfinished_last_candle"),
        ),
    ]


def save_report(report: DataQualityReport, path: Path) -> None:
    """Write the report as JSON atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report.to_dict(), indent=2, sort_keys=True)
    descriptor, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_report(path: Path) -> DataQualityReport:
    """Read a report written by `save_report`."""
    return DataQualityReport.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _examples(report: DataQualityReport, *checks: str) -> str:
    items = [issue for issue in report.examples if issue.check in checks]
    return "; ".join(f"{_short(item.timestamp)} {item.detail}".strip() for item in items)


def _short(stamp: pd.Timestamp | None) -> str:
    return "-" if stamp is None else f"{stamp:%Y-%m-%d %H:%M}"


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return None if stamp is None else stamp.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC").as_unit(TIMESTAMP_UNIT)


def _parse_ts(text: str | None) -> pd.Timestamp | None:
    return None if text is None else _ts(text)
