"""`--models` parsing: one shared parser for `backtest` and `train --select`, bounded echo."""

from __future__ import annotations

import pytest

from backtests.cli import parse_models
from core.errors import ConfigError


def test_parse_models_keeps_order_and_drops_repeats() -> None:
    assert parse_models("logreg, lightgbm,logreg") == ("logreg", "lightgbm")


def test_parse_models_error_echoes_a_bounded_input() -> None:
    huge = ",".join(["nope" + "x" * 5000] * 50)
    with pytest.raises(ConfigError) as caught:
        parse_models(huge)
    message = str(caught.value)
    assert message.startswith("--models: unknown model name(s)")
    assert len(message) < 500, len(message)
