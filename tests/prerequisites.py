"""What some tests need from the machine: the shared data, Chromium and a PostgreSQL server.

Without a prerequisite its tests are skipped locally but FAIL under CI (`CI=true`, which
`.ci/run` sets), so a CI run cannot be green while whole suites were quietly skipped. The paths
come from the environment (`.ci/run` exports both):

- `CRYPTOPRED_SHARED_DATA`: the CryptoDataDownload exports (default `../shared/data` from the
  repository root; a relative value is also taken from the repository root);
- `CRYPTOPRED_CHROMIUM`: the Chromium binary Playwright drives (default: Debian's
  `/usr/bin/chromium`).

`pytest_terminal_summary` (imported by `tests/conftest.py`) lists the skips by reason at the end.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_ENV = "CRYPTOPRED_SHARED_DATA"
CHROMIUM_ENV = "CRYPTOPRED_CHROMIUM"
SHARED_DATA = (REPO_ROOT / (os.environ.get(SHARED_DATA_ENV) or "../shared/data")).resolve()
CHROMIUM = Path(os.environ.get(CHROMIUM_ENV) or "/usr/bin/chromium")
_TRUE = {"1", "true", "yes", "on"}


def is_ci() -> bool:
    """True when the CI variable says so (`CI=true`, as GitHub Actions and .ci/run set it)."""
    return os.environ.get("CI", "").strip().lower() in _TRUE


def require_or_skip(reason: str) -> NoReturn:
    """A prerequisite is missing: skip the test, or fail it under CI."""
    if is_ci():
        pytest.fail(f"CI=true and a test prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_shared_data() -> Path:
    """The shared data folder (skip, or fail under CI, when it does not exist)."""
    if not SHARED_DATA.is_dir():
        require_or_skip(f"shared data not found at {SHARED_DATA} (set {SHARED_DATA_ENV})")
    return SHARED_DATA


def require_shared_file(name: str) -> Path:
    """One file of the shared data (skip, or fail under CI, when it does not exist)."""
    path = SHARED_DATA / name
    if not path.is_file():
        require_or_skip(f"shared data file not found: {path} (set {SHARED_DATA_ENV})")
    return path


def require_chromium() -> Path:
    """The Chromium executable (skip, or fail under CI, when it is missing)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        require_or_skip(
            f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set {CHROMIUM_ENV})"
        )
    return CHROMIUM


def count_skip_reasons(reports: Iterable[pytest.TestReport]) -> Counter[str]:
    """How many skipped tests gave each reason."""
    reasons: Counter[str] = Counter()
    for report in reports:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    return reasons


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """End the run with the skipped tests counted by reason, most frequent first."""
    reasons = count_skip_reasons(terminalreporter.stats.get("skipped", []))
    if not reasons:
        return
    total = sum(reasons.values())
    terminalreporter.write_sep("=", f"{total} skipped, by reason")
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"{count:5d}  {reason}")
