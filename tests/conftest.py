"""Shared fixtures only; builders live in tests/factories.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from core.settings import Settings
from tests.factories import make_ohlcv, make_settings

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def ohlcv() -> pd.DataFrame:
    return make_ohlcv(1500)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def log_has(caplog: pytest.LogCaptureFixture, text: str, level: int | None = None) -> bool:
    """True when a captured record contains `text` (at `level`, if given)."""
    return any(
        text in record.getMessage() and (level is None or record.levelno == level)
        for record in caplog.records
    )


__all__ = ["log_has", "logging"]
