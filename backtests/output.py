"""Where a backtest report goes: checked before the work, kept elsewhere if writing fails."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backtests.report import ReportFiles
from core.errors import ConfigError

logger = logging.getLogger(__name__)

MIN_FREE_BYTES = 64_000_000
"""Free space asked of the reports folder before a run: plotly.js (4.7 MB, copied once) plus
a page of a few MB on a year of hourly candles, with a wide margin."""
FALLBACK_DIR_NAME = "cryptopred-reports"
_FIX = "pass --out DIR or set backtest.reports_dir"


def fallback_reports_dir() -> Path:
    """Where a report goes when the configured folder fails after the work (the temp folder)."""
    return Path(tempfile.gettempdir()) / FALLBACK_DIR_NAME


def check_reports_dir(reports_dir: Path, *, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Fail before any work when the reports folder cannot be created, written or is full.

    Raises:
        ConfigError: names the folder, the reason and the fix.
    """
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".write-check-", dir=reports_dir)
        os.close(handle)
        Path(name).unlink()
        free = shutil.disk_usage(reports_dir).free
    except OSError as e:
        raise ConfigError(
            f"reports folder {reports_dir} is not writable ({e.strerror or e}); "
            f"fix its permissions or {_FIX}"
        ) from e
    if free < min_free_bytes:
        raise ConfigError(
            f"reports folder {reports_dir} has {free / 1e6:.1f} MB free, a report needs up to "
            f"{min_free_bytes / 1e6:.0f} MB; free some space or {_FIX}"
        )


@dataclass(frozen=True, slots=True)
class SavedReport:
    """The written report files; `problem` says why they are in the fallback folder, if so."""

    files: ReportFiles
    problem: str | None = None

    def raise_if_moved(self) -> None:
        """Raise `ConfigError` (after the caller kept the run) when the fallback was used."""
        if self.problem is not None:
            raise ConfigError(self.problem)


def save_report(write: Callable[[Path], ReportFiles], reports_dir: Path) -> SavedReport:
    """`write(reports_dir)`; if that fails (full disk, permissions changed), `write` again to
    `fallback_reports_dir()` so that the work is not lost.

    Raises:
        ConfigError: neither folder could be written; the console report is all that is kept.
    """
    try:
        return SavedReport(write(reports_dir))
    except OSError as e:
        first = f"cannot write the report to {reports_dir} ({e.strerror or e})"
    fallback = fallback_reports_dir()
    logger.warning("%s; writing it to %s instead", first, fallback)
    try:
        files = write(fallback)
    except OSError as e:
        raise ConfigError(
            f"{first}, nor to {fallback} ({e.strerror or e}); the console report above is "
            f"all that is kept: free some space or {_FIX}, then run again"
        ) from e
    return SavedReport(files, f"{first}; saved it to {files.html} instead (run recorded)")


def sharing_hint(plotly_js: Path | None) -> str | None:
    """One line on how to share a page that links the shared plotly.js (None: it embeds it).

    >>> sharing_hint(None) is None
    True
    >>> print(sharing_hint(Path("var/reports/plotly.min.js")))
    note: the charts load var/reports/plotly.min.js; to share the page alone, ...
    """
    if plotly_js is None:
        return None
    return (
        f"note: the charts load {plotly_js}; to share the page alone, run again with "
        "--self-contained"
    )
