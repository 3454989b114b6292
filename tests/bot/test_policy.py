"""The decision policy live: the same positions from the bot (across ticks and a restart),
the API (`/predict/candles`) and the backtest path (`positions_from_proba` over the same
probabilities); which policy trades and how the bot says so."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from bot.deps import BotDeps
from bot.job import run_once
from bot.position import state_from_rows
from core.settings import DecisionPolicy, Settings
from ml.decision import ACTIONS, live_policy, positions_from_proba
from ml.predict import predict_history, required_candles
from ml.registry import MANIFEST_FILE, ModelArtifact, ValidatedPolicy, read_manifest
from serving.models import ModelCache
from storage.db import session_scope
from storage.records import StoredPrediction
from storage.repository import list_predictions
from tests.bot.conftest import FakeSource, RecordingNotifier, close_of
from tests.conftest import log_has

FIRST, LAST = 1300, 1340
SKIPPED_TICKS = {1303, 1304, 1310, 1311, 1312, 1313, 1330}  # backfilled by the next tick


def _stored(factory: sessionmaker[Session]) -> list[StoredPrediction]:
    with session_scope(factory, read_only=True) as session:
        items = list_predictions(session, limit=1000).items
    return sorted(items, key=lambda row: (row.candle_open_ms, row.id))


def _validate(settings: Settings, artifact: ModelArtifact, policy: DecisionPolicy | None) -> None:
    """Give the registry model this validated policy (None: none, as models saved before the
    decision layer)."""
    root = settings.ml.registry_dir
    manifest = read_manifest(root, artifact.model_id)
    validated = None
    if policy is not None:
        validated = ValidatedPolicy(policy=policy, chosen_by="test", n_candidates=3)
    updated = manifest.model_copy(update={"decision": validated})
    (root / artifact.model_id / MANIFEST_FILE).write_text(updated.model_dump_json())


def _policy(proba: np.ndarray) -> DecisionPolicy:
    """Thresholds between the probabilities (so 1e-16 noise cannot flip a decision), a
    minimum hold, a cooldown, shorts and proba sizing."""
    low, mid, high = np.quantile(proba, [0.3125, 0.5125, 0.6875])
    return DecisionPolicy(
        entry_threshold=high,
        exit_threshold=mid,
        short_entry_threshold=low,
        short_exit_threshold=mid,
        allow_short=True,
        min_hold_bars=4,
        cooldown_bars=3,
        sizing="proba",
        edge_scale=1.0 / (2 * float(np.max(np.abs(proba - 0.5)))),  # sizes below 1
    )


def _restart_after(positions_side: np.ndarray, policy: DecisionPolicy, proba: np.ndarray) -> int:
    """A candle after which a minimum hold or a cooldown is still running."""
    for k in range(len(proba) - 2, 0, -1):
        state = positions_from_proba(proba[: k + 1], policy).final_state
        in_hold = state.side != 0 and state.bars_held < policy.min_hold_bars - 1
        cooling = state.side == 0 and state.bars_since_exit < policy.cooldown_bars - 1
        if (in_hold or cooling) and FIRST + k + 1 not in SKIPPED_TICKS:
            return k
    raise AssertionError(f"no hold or cooldown in {positions_side.tolist()}")


def test_bot_api_and_backtest_take_the_same_positions(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    proba = predict_history(artifact, market_candles.iloc[: LAST + 1]).iloc[FIRST - LAST - 1 :]
    assert len(proba) == LAST - FIRST + 1
    values = proba.to_numpy()
    policy = _policy(values)
    settings = make_deps().settings
    _validate(settings, artifact, policy)
    # the backtest path: the policy over the probability sequence
    expected = positions_from_proba(values, policy)
    no_waits = policy.model_copy(update={"min_hold_bars": 0, "cooldown_bars": 0})
    plain = positions_from_proba(values, no_waits)
    assert expected.side.tolist() != plain.side.tolist()  # holds and cooldowns matter here
    assert set(expected.side.tolist()) == {-1, 0, 1}
    assert 0 < expected.size[expected.side != 0].min() < expected.size.max() < 1

    # the bot: one tick per candle with gaps (backfills), restarted mid-hold or mid-cooldown
    restart = _restart_after(expected.side, policy, values)
    deps = make_deps()
    for row in range(FIRST, LAST + 1):
        if row in SKIPPED_TICKS:
            continue
        if row == FIRST + restart + 1:
            deps = make_deps(
                models=ModelCache(settings.ml.registry_dir, decision=settings.decision)
            )  # a new process
        source.now = close_of(market_candles, row)
        run_once(deps, source.now)
    stored = _stored(session_factory)
    assert [row.candle_open_ms for row in stored] == [
        int(stamp.value // 1_000_000) for stamp in proba.index
    ]
    assert [row.signal for row in stored] == expected.side.tolist()
    assert [row.size for row in stored] == pytest.approx(expected.size.tolist(), abs=1e-12)
    assert {row.policy_source for row in stored} == {"manifest"}
    assert log_has(caplog, f"model {artifact.model_id} trades the validated (manifest)")

    # the API: /predict/candles over the same candles (warm-up before FIRST), candle by candle
    needed = required_candles(artifact)
    api_settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"rate_limit": None})}
    )
    with TestClient(create_app(api_settings)) as client:
        for k, row in enumerate(range(FIRST, LAST + 1)):
            window = market_candles.iloc[FIRST - needed + 1 : row + 1]
            stamps = window.index.as_unit("ms").asi8.tolist()
            candles = [[ts, *v] for ts, v in zip(stamps, window.to_numpy().tolist(), strict=True)]
            response = client.post("/predict/candles", json={"candles": candles})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["action"] == ACTIONS[int(expected.side[k])], row
            assert body["size"] == pytest.approx(expected.size[k], abs=1e-12)
            assert body["policy"]["source"] == "manifest"
            assert body["policy"]["rule"] == policy.model_dump(mode="json")
            assert body["direction"] == stored[k].direction


def test_bot_trades_the_config_policy_and_warns_once_without_a_validated_policy(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    always_long = DecisionPolicy(entry_threshold=0.0, exit_threshold=0.0)
    settings = make_deps().settings
    settings = settings.model_copy(
        update={"decision": settings.decision.model_copy(update={"policy": always_long})}
    )
    _validate(settings, artifact, None)
    notifier = RecordingNotifier()
    deps = make_deps(settings=settings, notifier=notifier)
    for row in (FIRST, FIRST + 1, FIRST + 2):
        source.now = close_of(market_candles, row)
        run_once(deps, source.now)
    warnings = [
        record
        for record in caplog.records
        if "has no validated decision policy" in record.getMessage()
    ]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    stored = _stored(session_factory)
    assert {row.policy_source for row in stored} == {"config (model has no validated policy)"}
    assert [(row.signal, row.size) for row in stored] == [(1, 1.0)] * 3
    (change,) = notifier.changes
    assert (change.previous_action, change.action, change.size) == ("FLAT", "LONG", 1.0)
    assert change.payload()["direction"] == stored[0].direction
    assert log_has(caplog, "action=LONG size=1.00", logging.INFO)
    assert log_has(caplog, f"direction={stored[-1].direction} action=LONG", logging.INFO)


def test_bot_config_override_beats_the_validated_policy(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_deps().settings
    never_long = DecisionPolicy(entry_threshold=1.0, exit_threshold=1.0)
    _validate(settings, artifact, never_long)
    always_long = DecisionPolicy(entry_threshold=0.0, exit_threshold=0.0)
    decision = settings.decision.model_copy(update={"policy": always_long, "live_policy": "config"})
    run_once(make_deps(settings=settings.model_copy(update={"decision": decision})), source.now)
    (row,) = _stored(session_factory)
    assert (row.signal, row.policy_source) == (1, "config")
    assert log_has(caplog, "trades the configured (decision.policy) decision policy")
    source.now = close_of(market_candles, FIRST + 1)
    run_once(make_deps(), source.now)  # without the override: the manifest's, which exits
    last = _stored(session_factory)[-1]
    assert (last.signal, last.size, last.policy_source) == (0, 0.0, "manifest")


def _row(index: int, signal: int, *, size: float | None, proba: float = 0.6) -> StoredPrediction:
    return StoredPrediction(
        id=index, exchange="binance", symbol="BTC/USDT", timeframe="1h",
        candle_open_ms=index * 3_600_000, target_close_ms=(index + 2) * 3_600_000,
        horizon_bars=1, proba_up=proba, direction="UP", signal=signal,  # type: ignore[arg-type]
        threshold=0.5, model_id="m", created_ms=0, latency_ms=0.0, is_backfill=False,
        actual_return=None, actual_direction=None, is_correct=None, resolved_ms=None, size=size,
    )  # fmt: skip


def test_state_from_rows_dedupes_candles_and_sizes_old_rows_at_their_entry() -> None:
    proba_sized = DecisionPolicy(sizing="proba", edge_scale=5.0, min_hold_bars=6)
    policy = live_policy(None, Settings().decision.model_copy(update={"policy": proba_sized}))
    rows = [
        _row(1, 0, size=None),
        _row(2, 1, size=None, proba=0.56),  # logged before sizes: entry size from its proba
        _row(3, 1, size=None, proba=0.7),
        _row(4, 1, size=None, proba=0.52),
    ]
    duplicate = _row(4, 0, size=0.0)  # an older row of another model for the same candle
    newest_first = [rows[3], duplicate, rows[2], rows[1], rows[0]]
    state = state_from_rows(sorted(newest_first, key=lambda r: -r.candle_open_ms), policy)
    assert (state.side, state.bars_held) == (1, 2)
    assert state.size == pytest.approx(0.6)
    assert state_from_rows([], policy).side == 0
