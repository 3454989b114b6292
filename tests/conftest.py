"""Shared fixtures only; builders live in tests/factories.py.

Prerequisite checks and the skip summary hook live in tests/prerequisites.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from core.settings import Settings
from tests.factories import make_ohlcv, make_settings
from tests.prerequisites import (
    SHARED_DATA,
    pytest_terminal_summary,
    require_chromium,
    require_shared_data,
)


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """Entry points call `setup_logging`, which points the root handler at the sys.stderr of
    the moment: under CliRunner a capture stream closed after the test. Put the root logger
    back, so a later test's log lines never hit a closed stream ("--- Logging error ---")."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def ohlcv() -> pd.DataFrame:
    return make_ohlcv(1500)


@pytest.fixture
def shared_data() -> Path:
    return require_shared_data()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The Chromium binary (session scope: checked before any module fixture does slow work)."""
    return require_chromium()


def log_has(caplog: pytest.LogCaptureFixture, text: str, level: int | None = None) -> bool:
    """True when a captured record contains `text` (at `level`, if given)."""
    return any(
        text in record.getMessage() and (level is None or record.levelno == level)
        for record in caplog.records
    )


__all__ = ["SHARED_DATA", "log_has", "logging", "pytest_terminal_summary"]
