import numpy as np
import pandas as pd
import pytest

from core.errors import DataValidationError
from data.schema import frame_from_rows, index_to_epoch_ms, row_problems, validate_ohlcv
from tests.factories import make_ohlcv


def test_validate_ohlcv_accepts_factory_candles() -> None:
    frame = validate_ohlcv(make_ohlcv(100), timeframe="1h")
    assert str(frame.index.dtype) == "datetime64[ms, UTC]"
    assert frame.index.name == "timestamp"


def test_validate_ohlcv_names_first_bad_timestamp() -> None:
    frame = make_ohlcv(10)
    frame.iloc[4, frame.columns.get_loc("high")] = frame["low"].iloc[4] / 2
    with pytest.raises(DataValidationError, match=r"high_below_low.*2021-01-01 04:00"):
        validate_ohlcv(frame)


def test_validate_ohlcv_rejects_nan_duplicates_and_off_grid() -> None:
    frame = make_ohlcv(5)
    frame.iloc[2, 0] = np.nan
    with pytest.raises(DataValidationError, match="non_finite"):
        validate_ohlcv(frame)
    doubled = pd.concat([make_ohlcv(3), make_ohlcv(3).iloc[-1:]])
    with pytest.raises(DataValidationError, match="duplicated"):
        validate_ohlcv(doubled)
    shifted = make_ohlcv(3, start="2021-01-01 00:30")
    with pytest.raises(DataValidationError, match="1h grid"):
        validate_ohlcv(shifted, timeframe="1h")


def test_frame_from_rows_and_epoch_ms_round_trip() -> None:
    rows = [[1_600_000_000_000, 1, 2, 0.5, 1.5, 10], [1_600_003_600_000, 1.5, 2, 1, 1.2, 3]]
    frame = frame_from_rows(rows)
    assert index_to_epoch_ms(frame.index).tolist() == [1_600_000_000_000, 1_600_003_600_000]
    assert not row_problems(frame).to_numpy().any()


def test_row_problems_flags_each_kind() -> None:
    rows = [
        [0, 1, 2, 0.5, 1.5, 1],
        [1, 1, 0.5, 2, 1.5, 1],  # high < low
        [2, 3, 2, 0.5, 1.5, 1],  # open above high
        [3, -1, 2, -2, 1, 1],  # negative
        [4, None, 2, 0.5, 1, 1],  # missing
    ]
    problems = row_problems(frame_from_rows(rows))
    assert problems.sum().to_dict() == {
        "non_finite": 1,
        "non_positive": 1,
        "high_below_low": 1,
        "body_outside_range": 1,
    }
