"""The decision policy's state of a market, rebuilt from the predictions the bot logged."""

from __future__ import annotations

from collections.abc import Sequence

from ml.decision import (
    LivePolicy,
    PolicyState,
    history_bars_needed,
    position_size,
    state_from_history,
)
from storage.records import StoredPrediction


def state_from_rows(newest_first: Sequence[StoredPrediction], policy: LivePolicy) -> PolicyState:
    """The policy state after a market's logged predictions (newest first, as listed).

    One decision per candle (the newest row when two models logged the same candle); rows
    logged before sizes were recorded get the size `policy` gives their position's entry.
    """
    by_candle: dict[int, StoredPrediction] = {}
    for row in newest_first:
        by_candle.setdefault(row.candle_open_ms, row)
    rows = [by_candle[open_ms] for open_ms in sorted(by_candle)]
    rows = rows[-history_bars_needed(policy.policy) :]
    sizes: list[float] = []
    for i, row in enumerate(rows):
        if row.size is not None:
            sizes.append(row.size)
        elif row.signal == 0:
            sizes.append(0.0)
        elif i and rows[i - 1].signal == row.signal:
            sizes.append(sizes[-1])
        else:
            sizes.append(float(position_size([row.proba_up], policy.policy)[0]))
    return state_from_history([row.signal for row in rows], sizes)
