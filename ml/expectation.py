"""Expectation bands: what a policy's out-of-sample path says live returns should look like."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ml.registry import ReturnBand

BAND_WINDOWS_BARS = (24, 72, 168, 720)
"""Window lengths (candles) the bands are saved for; each needs >= 3 windows' worth of path."""
_QUANTILES = (0.01, 0.05, 0.5, 0.95, 0.99)


def return_bands(
    log_net: npt.ArrayLike, *, windows: Sequence[int] = BAND_WINDOWS_BARS
) -> tuple[ReturnBand, ...]:
    """Quantiles of the net return over every `window` consecutive candles of a path of
    per-candle log net returns (windows longer than a third of the path are skipped).

    >>> (band,) = return_bands(np.log1p(np.full(10, 0.01)), windows=[2])
    >>> band.window_bars, band.n_windows, round(band.p50, 6)
    (2, 9, 0.0201)
    """
    path = np.asarray(log_net, dtype="float64")
    cumulative = np.concatenate([[0.0], np.cumsum(path)])
    bands = []
    for window in windows:
        if 3 * window > len(path):
            continue
        returns = np.expm1(cumulative[window:] - cumulative[:-window])
        p01, p05, p50, p95, p99 = (float(q) for q in np.quantile(returns, _QUANTILES))
        bands.append(
            ReturnBand(
                window_bars=window,
                n_windows=len(returns),
                p01=p01,
                p05=p05,
                p50=p50,
                p95=p95,
                p99=p99,
            )
        )
    return tuple(bands)
