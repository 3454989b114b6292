import numpy as np
import pytest
from ml.signals import signal_from_proba, signals_from_proba

from core.settings import SignalSettings

LONG_ONLY = SignalSettings(long_threshold=0.55, exit_threshold=0.5, short_threshold=0.45)
WITH_SHORT = SignalSettings(
    long_threshold=0.55, exit_threshold=0.5, short_threshold=0.45, allow_short=True
)


@pytest.mark.parametrize(
    ("proba", "position", "expected"),
    [
        (0.55, 0, 1),  # entry is inclusive
        (0.549, 0, 0),
        (0.50, 1, 1),  # held while >= exit
        (0.499, 1, 0),  # exit below exit_threshold
        (0.30, 0, 0),  # no shorts without allow_short
        (float("nan"), 1, 0),
    ],
)
def test_signal_from_proba_long_only(proba: float, position: int, expected: int) -> None:
    assert signal_from_proba(proba, LONG_ONLY, position=position) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("proba", "position", "expected"),
    [(0.45, 0, -1), (0.5, -1, -1), (0.51, -1, 0), (0.6, -1, 1), (0.4, 1, -1)],
)
def test_signal_from_proba_with_short(proba: float, position: int, expected: int) -> None:
    assert signal_from_proba(proba, WITH_SHORT, position=position) == expected  # type: ignore[arg-type]


def test_signals_from_proba_matches_scalar_rule() -> None:
    rng = np.random.default_rng(3)
    proba = rng.uniform(0.35, 0.65, 500)
    vector = signals_from_proba(proba, WITH_SHORT)
    position = 0
    for p, got in zip(proba, vector, strict=True):
        position = signal_from_proba(float(p), WITH_SHORT, position=position)
        assert got == position
    assert set(np.unique(vector)) == {-1, 0, 1}
