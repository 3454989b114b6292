"""Live vs expectation: band choice, the return and accuracy checks, notes and the alarm."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from ml.registry import ModelManifest, ReturnBand
from serving.expectation import (
    ACCURACY_WINDOW,
    MIN_ACCURACY_N,
    check_accuracy,
    check_expectation,
    check_returns,
    choose_band,
)

Z99 = 2.5758293035489004  # two-sided 99 % normal quantile


def _band(window_bars: int, p01: float = -0.1, p99: float = 0.1) -> ReturnBand:
    return ReturnBand(
        window_bars=window_bars, n_windows=100, p01=p01, p05=p01 / 2, p50=0.0, p95=p99 / 2, p99=p99
    )


BANDS = (_band(24), _band(72, -0.2, 0.2))


def _manifest(*, decision: dict[str, Any] | None, accuracy: float | None = 0.55) -> ModelManifest:
    """A manifest as read from disk; `decision` without `return_bands` is an old model's."""
    walk_forward = None
    if accuracy is not None:
        walk_forward = {
            "metrics": {"accuracy": accuracy},
            "baselines": {},
            "significance": {},
            "folds": [],
            "fit_seconds": 1.0,
        }
    return ModelManifest.model_validate(
        {
            "model_id": "BTC_USDT-1h-logreg-20210101T0000Z",
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "algorithm": "logreg",
            "params": {},
            "feature_names": ["f1"],
            "feature_config": {},
            "feature_config_hash": "abc",
            "labels": {"horizon_bars": 1},
            "threshold": 0.5,
            "train_start": datetime(2020, 1, 1, tzinfo=UTC),
            "train_end": datetime(2021, 1, 1, tzinfo=UTC),
            "n_train_rows": 200,
            "candles_sha256": "0" * 64,
            "created_at": datetime(2021, 1, 2, tzinfo=UTC),
            "walk_forward": walk_forward,
            "decision": decision,
        }
    )


OLD_DECISION = {
    "policy": {"entry_threshold": 0.55, "exit_threshold": 0.5},
    "chosen_by": "config",
    "n_candidates": 1,
}


def _with_bands(*bands: ReturnBand) -> ModelManifest:
    decision = {**OLD_DECISION, "return_bands": [band.model_dump() for band in bands]}
    return _manifest(decision=decision)


@pytest.mark.parametrize(
    ("n_candles", "window"),
    [(0, None), (24, None), (25, 24), (72, 24), (73, 72), (10_000, 72)],
)
def test_choose_band_takes_the_longest_window_the_marks_cover(
    n_candles: int, window: int | None
) -> None:
    band = choose_band(BANDS, n_candles)
    assert (band.window_bars if band else None) == window
    assert choose_band((), 10_000) is None


def test_check_returns_over_the_window_ending_at_the_newest_mark() -> None:
    equity = [100.0] + [110.0] * 24 + [88.0]  # 26 marks: the 24-candle band
    check = check_returns(equity, BANDS)
    assert check is not None and check.band.window_bars == 24
    assert check.live_return == pytest.approx(88.0 / 110.0 - 1)  # -20 %, mark -25 to mark -1
    assert check.outside
    assert check_returns(equity[:24], BANDS) is None


def test_check_returns_band_edges_are_inside() -> None:
    equity = [100.0] * 24 + [95.0]
    edge = 95.0 / 100.0 - 1
    assert not check_returns(equity, [_band(24, p01=edge)]).outside
    assert check_returns(equity, [_band(24, p01=math.nextafter(edge, 0))]).outside
    rising = [100.0] * 24 + [105.0]
    assert not check_returns(rising, [_band(24, p99=105.0 / 100.0 - 1)]).outside


def _wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson (1927) score interval at 99 %, written out from the formula."""
    share, z2 = successes / n, Z99**2
    centre = (share + z2 / (2 * n)) / (1 + z2 / n)
    half = Z99 * math.sqrt(share * (1 - share) / n + z2 / (4 * n**2)) / (1 + z2 / n)
    return centre - half, centre + half


def test_check_accuracy_outside_when_the_interval_excludes_the_walk_forward() -> None:
    check = check_accuracy([True] * 20 + [False] * 80, 0.55)
    low, high = _wilson(20, 100)
    assert (check.low, check.high) == (pytest.approx(low), pytest.approx(high))
    assert (round(low, 4), round(high, 4)) == (0.1172, 0.3202)
    assert check.accuracy == 0.2 and check.outside
    # expected spread of accuracy over 100 predictions around 0.55: 0.55 -+ z sqrt(pq/n)
    half = Z99 * math.sqrt(0.55 * 0.45 / 100)
    assert (check.spread_low, check.spread_high) == (
        pytest.approx(0.55 - half),
        pytest.approx(0.55 + half),
    )


def test_check_accuracy_inside_when_the_interval_covers_it() -> None:
    check = check_accuracy([True] * 45 + [False] * 55, 0.55)
    low, high = _wilson(45, 100)
    assert check.high == pytest.approx(high) and high > 0.55 > low
    assert not check.outside
    # the same share over more predictions narrows the interval until it excludes 0.55
    assert check_accuracy([True] * 450 + [False] * 550, 0.55).outside


def test_check_expectation_old_manifest_without_bands_notes_no_band() -> None:
    for manifest in (_manifest(decision=OLD_DECISION), _manifest(decision=None)):
        assert manifest.decision is None or manifest.decision.return_bands == ()
        check = check_expectation(manifest, equity=[100.0] * 200, outcomes=[True, False] * 50)
        assert check.returns is None and not check.alarm
        assert any(note.startswith("no expectation band") for note in check.notes)
        assert check.accuracy is not None  # the accuracy check still runs


def test_check_expectation_notes_what_it_cannot_check_yet() -> None:
    manifest = _with_bands(*BANDS)
    check = check_expectation(manifest, equity=[100.0] * 24, outcomes=[False] * 29)
    assert (check.returns, check.accuracy, check.alarm) == (None, None, False)
    assert check.notes == (
        "no return check yet: fewer than 25 paper candles",
        f"no accuracy check yet: fewer than {MIN_ACCURACY_N} resolved predictions",
    )
    no_wf = _manifest(decision=None, accuracy=None)
    assert "no accuracy check: the model has no walk-forward accuracy" in (
        check_expectation(no_wf, equity=[], outcomes=[True] * 50).notes
    )
    assert check_expectation(None, equity=[], outcomes=[]).alarm is False


def test_check_expectation_alarm_and_reasons() -> None:
    manifest = _with_bands(*BANDS)
    flat = [100.0] * 30
    calm = check_expectation(manifest, equity=flat, outcomes=[True, False] * 20)
    assert calm.accuracy is not None and calm.returns is not None
    assert (calm.alarm, calm.reasons, calm.notes) == (False, (), ())
    crash = [*flat, 80.0]
    both = check_expectation(manifest, equity=crash, outcomes=[False] * 40)
    assert both.alarm
    assert both.reasons == (
        "paper return over the last 24 candles -20.00% is outside the out-of-sample 1-99 % "
        "band [-10.00%, +10.00%]",
        "live accuracy 0.0% over 40 predictions (99 % Wilson [0.0%, 14.2%]) excludes the "
        "walk-forward 55.0%",
    )
    only_returns = check_expectation(manifest, equity=crash, outcomes=[True, False] * 20)
    assert only_returns.alarm and len(only_returns.reasons) == 1


def test_check_expectation_uses_the_latest_accuracy_window_only() -> None:
    manifest = _with_bands(*BANDS)
    # old misses beyond the window do not count: the latest ACCURACY_WINDOW are half hits
    outcomes = [False] * 500 + [True, False] * (ACCURACY_WINDOW // 2)
    check = check_expectation(manifest, equity=[], outcomes=outcomes)
    assert check.accuracy is not None and check.accuracy.n == ACCURACY_WINDOW
    assert check.accuracy.accuracy == 0.5 and not check.alarm
    assert check_expectation(manifest, equity=[], outcomes=outcomes[-200:]).alarm is False
    assert check_expectation(manifest, equity=[], outcomes=[False] * 600).alarm


def test_check_accuracy_better_than_promised_is_also_outside() -> None:
    # live far above the walk-forward figure also parts from validation (e.g. a leak)
    assert check_accuracy([True] * 100, 0.55).outside
