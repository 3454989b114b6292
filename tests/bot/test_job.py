"""`run_once` with an in-process candle source, a fixed `now` and a real registry model."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.deps import BotDeps
from bot.job import run_once
from core.errors import (
    ConfigError,
    DataValidationError,
    ModelNotFoundError,
    TemporaryExchangeError,
)
from core.settings import DecisionPolicy, Settings
from ml.decision import positions_from_proba
from ml.predict import predict_history, predict_latest
from ml.registry import ModelArtifact, promote_model, save_model
from ml.workflow import train_model
from storage.db import session_scope
from storage.records import StoredPrediction
from storage.repository import latest_bot_run, list_predictions, start_bot_run
from tests.bot.conftest import (
    N_TRAIN,
    FakeSource,
    RecordingNotifier,
    close_of,
)
from tests.conftest import log_has
from tests.factories import make_ohlcv

HOUR_MS = 3_600_000


def _stored(factory: sessionmaker[Session]) -> list[StoredPrediction]:
    with session_scope(factory, read_only=True) as session:
        items = list_predictions(session, limit=1000).items
    return sorted(items, key=lambda row: (row.candle_open_ms, row.id))


def _open_ms(candles: pd.DataFrame, row: int) -> int:
    return int(candles.index[row].value // 1_000_000)


def test_run_once_predicts_newest_closed_candle(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    report = run_once(make_deps(), source.now)
    (row,) = _stored(session_factory)
    assert row.candle_open_ms == _open_ms(market_candles, 1300)
    assert row.target_close_ms == row.candle_open_ms + 2 * HOUR_MS
    assert not row.is_backfill
    assert row.created_ms >= int(source.now.timestamp() * 1000)
    assert row.latency_ms == pytest.approx(row.created_ms - row.candle_open_ms - HOUR_MS)
    assert report.written == 1
    assert not report.has_errors
    assert log_has(caplog, "BTC/USDT 1h candle_close_ts=2021-02-24T05:00Z proba_up=", logging.INFO)
    assert log_has(caplog, f"model_id={row.model_id} latency_ms=")


def test_run_once_is_idempotent(
    make_deps: Callable[..., BotDeps], source: FakeSource, session_factory: sessionmaker[Session]
) -> None:
    deps = make_deps()
    first = run_once(deps, source.now)
    again = run_once(deps, source.now + timedelta(minutes=20))
    assert (first.written, again.written) == (1, 0)
    assert len(_stored(session_factory)) == 1
    assert len(source.calls) == 1  # an idle poll (no new closed candle) fetches nothing


def test_run_once_backfills_missed_candles(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
) -> None:
    deps = make_deps()
    run_once(deps, source.now)
    source.now = close_of(market_candles, 1306)
    report = run_once(deps, source.now)
    rows = _stored(session_factory)
    assert report.written == 6
    assert [row.candle_open_ms for row in rows] == [
        _open_ms(market_candles, i) for i in range(1300, 1307)
    ]
    assert [row.is_backfill for row in rows[1:]] == [True] * 5 + [False]


def test_run_once_backfill_is_limited_by_max_backfill_bars(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    deps = make_deps(bot={"max_backfill_bars": 3})
    run_once(deps, source.now)
    source.now = close_of(market_candles, 1310)
    report = run_once(deps, source.now)
    assert report.written == 4  # the newest + 3 backfilled
    opens = [row.candle_open_ms for row in _stored(session_factory)]
    assert opens[1:] == [_open_ms(market_candles, i) for i in range(1307, 1311)]
    assert log_has(caplog, "6 closed candles since", logging.WARNING)


def test_run_once_resolves_outcomes_against_the_real_move(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
) -> None:
    deps = make_deps()
    for row in range(1300, 1306):
        source.now = close_of(market_candles, row)
        run_once(deps, source.now)
    rows = _stored(session_factory)
    close = market_candles["close"]
    assert [row.is_resolved for row in rows] == [True] * 5 + [False]
    outcomes = {True: 0, False: 0}
    for i, row in enumerate(rows[:-1], start=1300):
        actual = close.iloc[i + 1] / close.iloc[i] - 1
        assert row.actual_return == pytest.approx(actual, rel=1e-12)
        assert row.actual_direction == ("UP" if actual > 0 else "DOWN")
        assert row.is_correct == (row.direction == row.actual_direction)
        outcomes[bool(row.is_correct)] += 1
    assert sum(outcomes.values()) == 5


def test_run_once_resolves_backfilled_rows_in_the_same_tick(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
) -> None:
    deps = make_deps()
    run_once(deps, source.now)
    source.now = close_of(market_candles, 1304)
    report = run_once(deps, source.now)
    assert report.resolved == 4
    assert [row.is_resolved for row in _stored(session_factory)] == [True] * 4 + [False]


def test_run_once_never_predicts_the_forming_candle(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
) -> None:
    source.leak_forming = True  # the exchange (wrongly) returns the open candle too
    source.now = close_of(market_candles, 1300, seconds=1800)
    run_once(make_deps(), source.now)
    (row,) = _stored(session_factory)
    assert row.candle_open_ms == _open_ms(market_candles, 1300)


def test_run_once_retries_until_the_closed_candle_is_published(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    sleeps: list[float],
) -> None:
    source.lag_calls = 2
    report = run_once(make_deps(), source.now)
    assert sleeps == [1.0, 2.0]
    assert report.written == 1
    assert _stored(session_factory)[0].candle_open_ms == _open_ms(market_candles, 1300)


def test_run_once_skips_when_the_closed_candle_never_appears(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    session_factory: sessionmaker[Session],
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    source.lag_calls = 10
    report = run_once(make_deps(bot={"closed_candle_retries": 2}), source.now)
    assert len(sleeps) == 2
    assert report.errors("temporary") == 1
    assert _stored(session_factory) == []
    assert log_has(caplog, "has not published the candle opened 2021-02-24 04:00Z", logging.WARNING)


@pytest.mark.parametrize(
    ("error", "kind", "level"),
    [
        (TemporaryExchangeError("429 rate limit"), "temporary", logging.WARNING),
        (DataValidationError("1 candle(s) fail the 'finite' check"), "data", logging.WARNING),
        (RuntimeError("boom"), "other", logging.ERROR),
    ],
)
def test_run_once_error_policy_skips_market_and_counts(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    kind: str,
    level: int,
) -> None:
    with session_scope(session_factory) as session:
        run_id = start_bot_run(session, started_ms=0, host="test", pid=1)
    source.errors["BTC/USDT"] = [error]
    deps = make_deps(run_id=run_id)
    report = run_once(deps, source.now)
    assert report.errors(kind) == 1  # type: ignore[arg-type]
    assert log_has(caplog, "BTC/USDT 1h", level)
    if kind == "other":
        assert any(record.exc_info for record in caplog.records)
    with session_scope(session_factory, read_only=True) as session:
        run = latest_bot_run(session)
    assert run is not None
    assert (run.ticks, run.temporary_errors, run.data_errors, run.other_errors) == (
        1,
        int(kind == "temporary"),
        int(kind == "data"),
        int(kind == "other"),
    )
    assert run.last_error is not None and str(error) in run.last_error
    # the skipped candle is predicted by the next tick
    assert run_once(deps, source.now).written == 1


def test_run_once_one_bad_symbol_never_stops_the_others(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
) -> None:
    eth = make_ohlcv(len(market_candles), seed=9, price=2000.0)
    source.frames["ETH/USDT"] = eth
    source.errors["ETH/USDT"] = [RuntimeError("exchange blew up")]
    deps = make_deps(bot={"symbols": ("ETH/USDT", "BTC/USDT")})
    _give_eth_a_model(deps, artifact)
    report = run_once(deps, source.now)
    assert [m.error_kind for m in report.markets] == ["other", None]
    assert {row.symbol for row in _stored(session_factory)} == {"BTC/USDT"}


def _give_eth_a_model(deps: BotDeps, artifact: ModelArtifact) -> None:
    root = deps.settings.ml.registry_dir
    manifest = artifact.manifest.model_copy(
        update={"symbol": "ETH/USDT", "model_id": "ETH_USDT-1h-logreg-x"}
    )
    model_id = save_model(type(artifact)(artifact.estimator, manifest), root)
    promote_model(root, model_id)


@pytest.mark.parametrize("error", [ModelNotFoundError, ConfigError])
def test_run_once_model_and_config_errors_stop_the_bot(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    caplog: pytest.LogCaptureFixture,
    error: type[Exception],
) -> None:
    source.errors["BTC/USDT"] = [error("fatal")]
    with pytest.raises(error):
        run_once(make_deps(), source.now)
    assert log_has(caplog, "Stopping the bot: BTC/USDT 1h", logging.ERROR)


def test_run_once_without_a_promoted_model_stops(
    make_deps: Callable[..., BotDeps], source: FakeSource
) -> None:
    deps = make_deps(bot={"symbols": ("SOL/USDT",)})
    with pytest.raises(ModelNotFoundError, match="no current model for SOL/USDT 1h"):
        run_once(deps, source.now)


def test_run_once_warmup_below_model_needs_is_config_error(
    make_deps: Callable[..., BotDeps], source: FakeSource
) -> None:
    with pytest.raises(ConfigError, match=r"bot.warmup_bars \(50\) is below"):
        run_once(make_deps(bot={"warmup_bars": 50}), source.now)


def test_run_once_proba_equals_predict_latest_and_backtest_path(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
) -> None:
    deps = make_deps()
    run_once(deps, source.now)
    source.now = close_of(market_candles, 1310)
    run_once(deps, source.now)
    history = predict_history(artifact, market_candles.iloc[:1311])
    for row in _stored(session_factory):
        stamp = pd.Timestamp(row.candle_open_ms, unit="ms", tz="UTC")
        assert row.proba_up == pytest.approx(history.loc[stamp], rel=1e-9)
    latest = predict_latest(artifact, market_candles.iloc[:1311])
    assert _stored(session_factory)[-1].proba_up == pytest.approx(latest.proba_up, rel=1e-9)


def _with_policy(settings: Settings, policy: DecisionPolicy) -> Settings:
    """`settings` trading `policy` live (the config overrides the model's policy explicitly)."""
    decision = settings.decision.model_copy(update={"policy": policy, "live_policy": "config"})
    return settings.model_copy(update={"decision": decision})


def _replay_ticks(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    artifact: ModelArtifact,
    session_factory: sessionmaker[Session],
    policy_of: Callable[[np.ndarray], DecisionPolicy],
) -> tuple[list[int], list[int]]:
    """Ticks with gaps (backfills) from candle 1300 to 1340: stored signals and the backtest's."""
    history = predict_history(artifact, market_candles.iloc[:1341]).iloc[-41:]
    policy = policy_of(history.to_numpy())
    deps = make_deps(settings=_with_policy(make_deps().settings, policy))
    for row in [1300, 1301, 1305, 1306, 1307, 1320, 1321, 1340]:
        source.now = close_of(market_candles, row)
        run_once(deps, source.now)
    stored = _stored(session_factory)
    assert len(stored) == 41
    expected = positions_from_proba(history.to_numpy(), policy).side.tolist()
    return [row.signal for row in stored], expected


def _hysteresis_policy(proba: np.ndarray, **rules: int) -> DecisionPolicy:
    # between two probabilities (index 12.5, 20.5, 28.5 of 41), so 1e-16 noise cannot flip one
    low, mid, high = np.quantile(proba, [0.3125, 0.5125, 0.7125])
    return DecisionPolicy(
        entry_threshold=high,
        exit_threshold=mid,
        allow_short=True,
        short_entry_threshold=low,
        short_exit_threshold=mid,
        **rules,
    )


def test_run_once_signals_equal_the_backtest_signals(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
) -> None:
    signals, expected = _replay_ticks(
        make_deps, source, market_candles, artifact, session_factory, _hysteresis_policy
    )
    assert signals == expected
    assert len(set(expected)) == 3  # long, flat and short all occur: hysteresis is exercised


def test_run_once_signals_equal_the_backtest_signals_with_min_hold_and_cooldown(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
) -> None:
    def policy_of(proba: np.ndarray) -> DecisionPolicy:
        return _hysteresis_policy(proba, min_hold_bars=3, cooldown_bars=2)

    signals, expected = _replay_ticks(
        make_deps, source, market_candles, artifact, session_factory, policy_of
    )
    assert len(set(expected)) == 3
    assert signals == expected


def test_run_once_records_the_heartbeat(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    session_factory: sessionmaker[Session],
) -> None:
    with session_scope(session_factory) as session:
        run_id = start_bot_run(session, started_ms=0, host="test", pid=1)
    deps = make_deps(run_id=run_id, wall_ms=lambda: 123_456)
    run_once(deps, source.now)
    run_once(deps, source.now)
    with session_scope(session_factory, read_only=True) as session:
        run = latest_bot_run(session)
    assert run is not None
    assert (run.ticks, run.predictions_written, run.last_tick_ms) == (2, 1, 123_456)
    assert run.temporary_errors == run.data_errors == run.other_errors == 0


def test_run_once_notifies_signal_changes_only(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
) -> None:
    always_long = DecisionPolicy(entry_threshold=0.0, exit_threshold=0.0)
    settings = _with_policy(make_deps().settings, always_long)
    notifier = RecordingNotifier()
    deps = make_deps(settings=settings, notifier=notifier)
    run_once(deps, source.now)
    run_once(deps, source.now)
    source.now = close_of(market_candles, 1301)
    run_once(deps, source.now)
    (change,) = notifier.changes
    assert (change.previous_signal, change.signal) == (0, 1)
    assert change.candle_open_ms == _open_ms(market_candles, 1300)
    assert change.payload()["text"].startswith("BTC/USDT 1h: FLAT -> LONG 1.00 (direction ")
    assert change.policy_source == "config"


def test_run_once_reloads_the_model_after_a_promotion(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    deps = make_deps()
    run_once(deps, source.now)
    outcome = train_model(
        market_candles.iloc[: N_TRAIN + 100],
        deps.settings,
        symbol="BTC/USDT",
        timeframe="1h",
        algorithm="logreg",
    )
    promote_model(deps.settings.ml.registry_dir, outcome.model_id)
    source.now = close_of(market_candles, 1301)
    run_once(deps, source.now)
    first, second = _stored(session_factory)
    assert first.model_id != second.model_id == outcome.model_id
    assert not second.is_backfill  # a new model starts at the newest candle
    assert log_has(caplog, f"-> {outcome.model_id} (reloaded)", logging.INFO)


def test_run_once_warns_once_about_a_stale_model(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deps = make_deps()
    deps = make_deps(
        models=type(deps.models)(
            deps.models.root, decision=deps.settings.decision, max_age=timedelta(days=2)
        )
    )
    run_once(deps, source.now)
    run_once(deps, source.now)
    stale = [r for r in caplog.records if "is stale" in r.getMessage()]
    assert len(stale) == 1
    assert stale[0].levelno == logging.WARNING


def test_run_once_backfills_for_a_model_promoted_while_down(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
) -> None:
    deps = make_deps()
    run_once(deps, source.now)  # candle 1300 by the first model
    outcome = train_model(
        market_candles.iloc[: N_TRAIN + 100],
        deps.settings,
        symbol="BTC/USDT",
        timeframe="1h",
        algorithm="logreg",
    )
    promote_model(deps.settings.ml.registry_dir, outcome.model_id)
    source.now = close_of(market_candles, 1304)  # down for three candles, then restarted
    run_once(deps, source.now)
    rows = [row for row in _stored(session_factory) if row.model_id == outcome.model_id]
    assert [row.candle_open_ms for row in rows] == [
        _open_ms(market_candles, i) for i in range(1301, 1305)
    ]
    assert [row.is_backfill for row in rows] == [True, True, True, False]
