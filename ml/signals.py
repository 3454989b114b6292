"""`signal_from_proba`: the one rule turning `proba_up` into a position (backtest AND bot)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from core.settings import SignalSettings
from core.types import Signal


def signal_from_proba(proba_up: float, cfg: SignalSettings, *, position: Signal = 0) -> Signal:
    """Target position after seeing `proba_up`, given the current `position`.

    Hysteresis: a long is entered at `proba_up >= long_threshold` and held until `proba_up <
    exit_threshold`; a short (only with `allow_short`) is entered at `proba_up <= short_threshold`
    and held until `proba_up > exit_threshold`. A non-finite probability means "no opinion": flat.

    >>> cfg = SignalSettings(long_threshold=0.55, exit_threshold=0.5)
    >>> signal_from_proba(0.56, cfg), signal_from_proba(0.52, cfg)
    (1, 0)
    >>> signal_from_proba(0.52, cfg, position=1)
    1
    """
    if not np.isfinite(proba_up):
        return 0
    if position == 1 and proba_up >= cfg.exit_threshold:
        return 1
    if position == -1 and cfg.allow_short and proba_up <= cfg.exit_threshold:
        return -1
    if proba_up >= cfg.long_threshold:
        return 1
    if cfg.allow_short and proba_up <= cfg.short_threshold:
        return -1
    return 0


def signals_from_proba(proba_up: npt.ArrayLike, cfg: SignalSettings) -> npt.NDArray[np.int8]:
    """Positions over a sequence of probabilities, applying `signal_from_proba` bar by bar.

    >>> signals_from_proba([0.6, 0.52, 0.49, 0.52], SignalSettings()).tolist()
    [1, 1, 0, 0]
    """
    values = np.asarray(proba_up, dtype="float64")
    out = np.zeros(len(values), dtype="int8")
    position: Signal = 0
    for i, proba in enumerate(values):
        position = signal_from_proba(float(proba), cfg, position=position)
        out[i] = position
    return out
