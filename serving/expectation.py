"""Live vs expectation: the paper account's recent return against the model's out-of-sample
return band, and live accuracy (Wilson interval) against its walk-forward accuracy.

An alarm says live trading has parted from what the model's validation promised: the net
return over the band's window is outside its 1st..99th percentile, or the 99 % Wilson interval
of the accuracy over the latest predictions excludes the walk-forward accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import norm

from ml.evaluation import wilson_interval
from ml.registry import ModelManifest, ReturnBand

ALARM_CONFIDENCE = 0.99
"""Confidence of the two-sided intervals the alarms use."""
ACCURACY_WINDOW = 168
"""Latest resolved predictions the accuracy check looks at."""
MIN_ACCURACY_N = 30
"""Fewer resolved predictions than this: no accuracy check yet."""


@dataclass(frozen=True, slots=True)
class ReturnCheck:
    """Net paper return over the last `band.window_bars` candles against the band."""

    band: ReturnBand
    live_return: float

    @property
    def outside(self) -> bool:
        """True when the return is below the 1st or above the 99th percentile."""
        return not self.band.p01 <= self.live_return <= self.band.p99


@dataclass(frozen=True, slots=True)
class AccuracyCheck:
    """Live accuracy over `n` predictions, its Wilson interval and the expected spread."""

    n: int
    n_correct: int
    expected: float
    low: float
    high: float
    spread_low: float
    spread_high: float

    @property
    def accuracy(self) -> float:
        """Live accuracy."""
        return self.n_correct / self.n

    @property
    def outside(self) -> bool:
        """True when the Wilson interval excludes the walk-forward accuracy."""
        return not self.low <= self.expected <= self.high


@dataclass(frozen=True, slots=True)
class Expectation:
    """Both checks (None when they cannot be made, `notes` say why) and the alarm."""

    returns: ReturnCheck | None
    accuracy: AccuracyCheck | None
    notes: tuple[str, ...] = ()

    @property
    def alarm(self) -> bool:
        """True when live results fall outside what validation promised."""
        return bool(
            (self.returns and self.returns.outside) or (self.accuracy and self.accuracy.outside)
        )

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the alarm is raised, in words."""
        reasons = []
        if self.returns is not None and self.returns.outside:
            band = self.returns.band
            reasons.append(
                f"paper return over the last {band.window_bars} candles "
                f"{self.returns.live_return:+.2%} is outside the out-of-sample 1-99 % band "
                f"[{band.p01:+.2%}, {band.p99:+.2%}]"
            )
        if self.accuracy is not None and self.accuracy.outside:
            acc = self.accuracy
            reasons.append(
                f"live accuracy {acc.accuracy:.1%} over {acc.n} predictions (99 % Wilson "
                f"[{acc.low:.1%}, {acc.high:.1%}]) excludes the walk-forward {acc.expected:.1%}"
            )
        return tuple(reasons)


def choose_band(bands: Sequence[ReturnBand], n_candles: int) -> ReturnBand | None:
    """The longest band whose window the live record covers (`n_candles` marks).

    >>> band = ReturnBand(window_bars=24, n_windows=1, p01=0, p05=0, p50=0, p95=0, p99=0)
    >>> choose_band([band], 24) is None, choose_band([band], 25) is band
    (True, True)
    """
    covered = [band for band in bands if band.window_bars <= n_candles - 1]
    return max(covered, key=lambda band: band.window_bars, default=None)


def check_returns(equity: Sequence[float], bands: Sequence[ReturnBand]) -> ReturnCheck | None:
    """The paper return over the chosen band's window, ending at the newest mark."""
    band = choose_band(bands, len(equity))
    if band is None:
        return None
    return ReturnCheck(band, equity[-1] / equity[-1 - band.window_bars] - 1.0)


def check_accuracy(
    outcomes: Sequence[bool], expected: float, *, confidence: float = ALARM_CONFIDENCE
) -> AccuracyCheck:
    """Live accuracy of `outcomes` (True = correct) against the walk-forward `expected`.

    >>> check = check_accuracy([True] * 20 + [False] * 80, 0.55)
    >>> round(check.high, 3), check.outside
    (0.32, True)
    """
    n, n_correct = len(outcomes), sum(bool(o) for o in outcomes)
    low, high = wilson_interval(n_correct, n, confidence=confidence)
    z = float(norm.ppf(0.5 + confidence / 2))
    half = z * math.sqrt(expected * (1 - expected) / n) if n else 1.0
    return AccuracyCheck(
        n=n,
        n_correct=n_correct,
        expected=expected,
        low=low,
        high=high,
        spread_low=max(0.0, expected - half),
        spread_high=min(1.0, expected + half),
    )


def check_expectation(
    manifest: ModelManifest | None, *, equity: Sequence[float], outcomes: Sequence[bool]
) -> Expectation:
    """Both checks for a model: paper `equity` per candle (oldest first) and the outcomes of
    its latest resolved predictions (oldest first, at most `ACCURACY_WINDOW` are used)."""
    notes: list[str] = []
    bands = manifest.decision.return_bands if manifest and manifest.decision else ()
    returns = check_returns(equity, bands)
    if not bands:
        notes.append(
            "no expectation band: the model's manifest has none (trained before bands were "
            "recorded); retrain it with `cryptopred train`"
        )
    elif returns is None:
        shortest = min(band.window_bars for band in bands)
        notes.append(f"no return check yet: fewer than {shortest + 1} paper candles")
    expected = (
        manifest.walk_forward.metric("accuracy") if manifest and manifest.walk_forward else None
    )
    recent = list(outcomes)[-ACCURACY_WINDOW:]
    accuracy = None
    if expected is None:
        notes.append("no accuracy check: the model has no walk-forward accuracy")
    elif len(recent) < MIN_ACCURACY_N:
        notes.append(f"no accuracy check yet: fewer than {MIN_ACCURACY_N} resolved predictions")
    else:
        accuracy = check_accuracy(recent, expected)
    return Expectation(returns, accuracy, tuple(notes))
