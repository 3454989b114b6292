"""The bot's paper account: marks equal a backtest of the same candles with the same model and
policy, across ticks, backfills, a restart, a repeated tick and a promotion."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.deps import BotDeps
from bot.job import run_once
from core.settings import DecisionPolicy, Settings
from ml.decision import positions_from_proba
from ml.predict import predict_history
from ml.registry import ModelArtifact, promote_model
from ml.workflow import train_model
from serving.models import ModelCache
from storage.db import session_scope
from storage.paper import PaperMark, PaperOrder, list_paper_marks, list_paper_orders
from strategy.vectorized import simulate_signals
from tests.bot.conftest import N_TRAIN, FakeSource, close_of
from tests.bot.test_policy import _policy, _validate

FIRST, LAST = 1300, 1340
SKIPPED_TICKS = {1303, 1304, 1310, 1311, 1312, 1313, 1330}
COSTS = {"fee_rate": 0.001, "slippage_bps": 7.5, "position_fraction": 0.95}


def _with_costs(settings: Settings, **decision: object) -> Settings:
    update: dict[str, object] = {"strategy": settings.strategy.model_copy(update=COSTS)}
    if decision:
        update["decision"] = settings.decision.model_copy(update=decision)
    return settings.model_copy(update=update)


def _paper(factory: sessionmaker[Session]) -> tuple[list[PaperMark], list[PaperOrder]]:
    with session_scope(factory, read_only=True) as session:
        marks = list_paper_marks(session, symbol="BTC/USDT", timeframe="1h")
        orders = list_paper_orders(session, symbol="BTC/USDT", timeframe="1h")
    return marks, orders


def _backtest(candles: pd.DataFrame, side: np.ndarray, size: np.ndarray, settings: Settings):
    strategy = settings.strategy
    return simulate_signals(
        candles,
        side,
        sizes=size,
        cash=strategy.cash,
        fee_rate=strategy.fee_rate,
        slippage_bps=strategy.slippage_bps,
        position_fraction=strategy.position_fraction,
    )


def test_paper_equity_equals_the_backtest_across_backfills_and_a_restart(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
) -> None:
    proba = predict_history(artifact, market_candles.iloc[: LAST + 1]).iloc[FIRST - LAST - 1 :]
    policy = _policy(proba.to_numpy())
    settings = _with_costs(make_deps().settings)
    _validate(settings, artifact, policy)
    deps = make_deps(settings=settings)
    for row in range(FIRST, LAST + 1):
        if row in SKIPPED_TICKS:
            continue
        if row == 1320:
            deps = make_deps(
                settings=settings,
                models=ModelCache(settings.ml.registry_dir, decision=settings.decision),
            )
        source.now = close_of(market_candles, row)
        run_once(deps, source.now)
        run_once(deps, source.now)  # a repeated tick writes nothing new
    marks, orders = _paper(session_factory)
    expected = positions_from_proba(proba.to_numpy(), policy)
    backtest = _backtest(
        market_candles.iloc[FIRST : LAST + 1], expected.side, expected.size, settings
    )
    assert [m.candle_open_ms for m in marks] == proba.index.as_unit("ms").asi8.tolist()
    equity = np.array([m.equity for m in marks])
    assert np.abs(equity - backtest.equity.to_numpy()).max() <= 1e-6
    filled = [o for o in orders if o.status == "filled"]
    assert len(filled) == backtest.orders >= 4
    assert [o.price for o in filled] == pytest.approx(backtest.fills["price"].tolist(), rel=1e-12)
    assert [o.fee for o in filled] == pytest.approx(backtest.fills["fee"].tolist(), rel=1e-12)
    assert {m.model_id for m in marks} == {artifact.model_id}


def test_paper_position_carries_over_a_promotion(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
) -> None:
    always_long = DecisionPolicy(entry_threshold=0.0, exit_threshold=0.0)
    settings = _with_costs(make_deps().settings, live_policy="config", policy=always_long)
    deps = make_deps(settings=settings)
    for row in range(FIRST, FIRST + 4):
        source.now = close_of(market_candles, row)
        run_once(deps, source.now)
    outcome = train_model(
        market_candles.iloc[: N_TRAIN + 100],
        settings,
        symbol="BTC/USDT",
        timeframe="1h",
        algorithm="logreg",
    )
    promote_model(settings.ml.registry_dir, outcome.model_id)
    for row in range(FIRST + 4, FIRST + 8):
        source.now = close_of(market_candles, row)
        run_once(deps, source.now)
    marks, orders = _paper(session_factory)
    # the long bought at the open after the first decision is held through the promotion
    assert [(o.role, o.status) for o in orders] == [("entry", "filled")]
    assert len({m.units for m in marks[1:]}) == 1 and marks[1].units > 0
    assert [m.model_id for m in marks] == [artifact.model_id] * 4 + [outcome.model_id] * 4
    backtest = _backtest(
        market_candles.iloc[FIRST : FIRST + 8], np.ones(8, int), np.ones(8), settings
    )
    assert [m.equity for m in marks] == pytest.approx(backtest.equity.tolist(), abs=1e-6)
