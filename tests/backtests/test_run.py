"""run_backtest on synthetic candles: out-of-sample proba, periods, folds, fees, saved models."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.run import BacktestProgress, BacktestResult, run_backtest, select_candles
from backtests.sensitivity import engine_gap, fee_sensitivity
from core.errors import ConfigError, NotEnoughDataError
from core.settings import DecisionPolicy, Settings
from ml.dataset import make_dataset
from ml.decision import positions_from_proba
from ml.policy_search import policy_grid
from ml.predict import predict_history
from ml.registry import ModelArtifact, ValidatedPolicy, load_model, read_manifest, save_model
from ml.walk_forward import walk_forward_splits
from ml.workflow import train_model
from strategy.vectorized import simulate_signals
from tests.backtests.conftest import small_settings
from tests.conftest import log_has
from tests.factories import make_ohlcv


def test_run_backtest_proba_is_nan_before_the_first_test_window(
    bt_result: BacktestResult, bt_candles: pd.DataFrame
) -> None:
    proba = bt_result.models[0].proba_up
    assert proba.index.equals(bt_candles.index)
    first_test = bt_result.period_start
    assert proba.loc[: first_test - pd.Timedelta(hours=1)].isna().all()
    assert proba.loc[first_test : bt_result.period_end].notna().all()
    assert np.isfinite(proba.loc[first_test])


def test_run_backtest_tests_exactly_the_walk_forward_test_rows(
    bt_result: BacktestResult, bt_candles: pd.DataFrame, bt_settings: Settings
) -> None:
    dataset = make_dataset(bt_candles, bt_settings.ml)
    folds = walk_forward_splits(len(dataset.X), bt_settings.ml.walk_forward, horizon_bars=1)
    index = dataset.X.index
    expected = [(index[f.test[0]], index[f.test[-1]]) for f in folds]
    segments = bt_result.models[0].segments
    assert [(s.start, s.end) for s in segments] == expected
    assert bt_result.period_start == expected[0][0]
    assert bt_result.period_end == expected[-1][1]
    assert sum(s.trading.n_bars for s in segments) == len(bt_result.candles)
    assert [s.classification.n for s in segments] == [len(f.test) for f in folds]


def test_run_backtest_buy_and_hold_equals_last_close_over_first_open(
    bt_result: BacktestResult, bt_candles: pd.DataFrame
) -> None:
    tested = bt_candles.loc[bt_result.period_start : bt_result.period_end]
    direct = tested["close"].iloc[-1] / tested["open"].iloc[0] - 1
    assert bt_result.buy_and_hold.total_return == pytest.approx(direct, rel=1e-12)
    assert bt_result.models[0].trading.buy_and_hold_return == pytest.approx(direct, rel=1e-12)
    segment = bt_result.models[0].segments[1]
    part = bt_candles.loc[segment.start : segment.end]
    assert segment.trading.buy_and_hold_return == pytest.approx(
        part["close"].iloc[-1] / part["open"].iloc[0] - 1, rel=1e-12
    )


def test_run_backtest_trades_only_inside_the_tested_period(bt_result: BacktestResult) -> None:
    model = bt_result.models[0]
    trades = model.run.trades
    assert model.run.equity.index.equals(bt_result.candles.index)
    if len(trades):
        assert trades["entry_time"].min() > bt_result.period_start  # filled at the next open
    assert model.predictions["signal"].isin([0, 1]).all()


def test_run_backtest_fee_sweep_matches_backtrader_at_the_configured_fee(
    bt_result: BacktestResult, bt_settings: Settings
) -> None:
    model = bt_result.models[0]
    assert model.engine_gap < 1e-9
    configured = bt_settings.strategy.fee_rate * 1e4
    (point,) = [p for p in model.fee_sensitivity.points if p.fee_bps == configured]
    assert point.total_return == pytest.approx(model.trading.total_return, rel=1e-9, abs=1e-12)
    returns = [p.total_return for p in model.fee_sensitivity.points]
    if model.trading.n_trades:
        assert returns == sorted(returns, reverse=True)  # more fees, less money


def test_fee_sensitivity_break_even_is_where_the_return_is_zero(
    bt_candles: pd.DataFrame, bt_settings: Settings
) -> None:
    frame = bt_candles.iloc[:600].copy()
    close = frame["close"]
    # An oracle-ish signal that profits before fees and trades often: the break-even is finite.
    proba = np.where(close.shift(-1) > close, 0.9, 0.1)
    proba[-1] = np.nan
    planned = positions_from_proba(proba, bt_settings.decision.policy)
    costs = bt_settings.strategy
    result = fee_sensitivity(
        frame,
        timeframe="1h",
        side=planned.side,
        size=planned.size,
        strategy=costs,
        fee_bps=[0, 50, 100],
    )
    assert result.status == "crossed"
    assert result.break_even_bps is not None
    run = simulate_signals(
        frame,
        planned.side,
        sizes=planned.size,
        cash=costs.cash,
        fee_rate=result.break_even_bps * 1e-4,
        slippage_bps=0.0,
        position_fraction=costs.position_fraction,
    )
    assert run.final_equity / costs.cash - 1 == pytest.approx(0.0, abs=1e-6)


def test_fee_sensitivity_reports_a_strategy_that_never_profits(
    bt_candles: pd.DataFrame, bt_settings: Settings
) -> None:
    frame = bt_candles.iloc[:400].copy()
    close = frame["close"]
    always_wrong = np.where(close.shift(-1) > close, 0.1, 0.9)
    planned = positions_from_proba(always_wrong, bt_settings.decision.policy)
    result = fee_sensitivity(
        frame,
        timeframe="1h",
        side=planned.side,
        size=planned.size,
        strategy=bt_settings.strategy,
        fee_bps=[0, 10],
    )
    assert result.status == "never_profitable"
    assert result.break_even_bps is None
    assert "loses money" in result.note


def test_run_backtest_reports_fold_and_backtest_progress(
    bt_candles: pd.DataFrame, bt_settings: Settings
) -> None:
    events: list[BacktestProgress] = []
    run_backtest(
        bt_candles.iloc[:1400],
        bt_settings,
        symbol="BTC/USDT",
        timeframe="1h",
        algorithms=["logreg"],
        progress=events.append,
    )
    folds = [e for e in events if e.stage == "folds"]
    assert folds[0].done == 0 and folds[-1].done == folds[-1].total > 0
    assert [e.done for e in folds] == list(range(folds[-1].total + 1))
    assert events[-1].stage == "backtest" and events[-1].done == events[-1].total


def test_run_backtest_leaderboard_compares_two_models_on_the_same_period(
    bt_candles: pd.DataFrame, tmp_path: Path
) -> None:
    settings = small_settings(tmp_path, ml={"model": {"params": {"xgboost": {"n_estimators": 20}}}})
    result = run_backtest(
        bt_candles, settings, symbol="BTC/USDT", timeframe="1h", algorithms=["logreg", "xgboost"]
    )
    assert [m.algorithm for m in result.models] == ["logreg", "xgboost"]
    board = result.leaderboard()
    assert {m.algorithm for m in board} == {"logreg", "xgboost"}
    assert board[0].trading.total_return >= board[1].trading.total_return
    first, second = result.models
    assert first.run.equity.index.equals(second.run.equity.index)
    assert [(s.start, s.end) for s in first.segments] == [(s.start, s.end) for s in second.segments]
    assert not first.proba_up.equals(second.proba_up)


def test_run_backtest_start_end_restrict_training_and_testing(
    bt_candles: pd.DataFrame, tmp_path: Path
) -> None:
    settings = small_settings(
        tmp_path, backtest={"start": "2021-01-10T00:00", "end": "2021-03-01T00:00"}
    )
    result = run_backtest(
        bt_candles, settings, symbol="BTC/USDT", timeframe="1h", algorithms=["logreg"]
    )
    assert result.data_start == pd.Timestamp("2021-01-10", tz="UTC")
    assert result.data_end == pd.Timestamp("2021-03-01", tz="UTC")
    proba = result.models[0].proba_up
    assert proba.index[0] == result.data_start and proba.index[-1] == result.data_end


def test_select_candles_empty_range_fails_with_hint(
    bt_candles: pd.DataFrame, tmp_path: Path
) -> None:
    settings = small_settings(tmp_path, backtest={"start": "2030-01-01", "end": "2030-02-01"})
    with pytest.raises(NotEnoughDataError, match="widen --start/--end"):
        select_candles(bt_candles, settings)


def test_run_backtest_without_algorithms_is_a_config_error(
    bt_candles: pd.DataFrame, bt_settings: Settings
) -> None:
    with pytest.raises(ConfigError, match="at least one algorithm"):
        run_backtest(bt_candles, bt_settings, symbol="BTC/USDT", timeframe="1h", algorithms=[])


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, pd.DataFrame, str]:
    """A logreg model trained on the first 1,500 of 2,200 candles, saved in the registry."""
    candles = make_ohlcv(2200, seed=3)
    settings = small_settings(tmp_path_factory.mktemp("registry"))
    outcome = train_model(
        candles.iloc[:1500], settings, symbol="BTC/USDT", timeframe="1h", algorithm="logreg"
    )
    return settings, candles, outcome.model_id


def test_run_backtest_fixed_model_uses_the_live_inference_path(
    saved_model: tuple[Settings, pd.DataFrame, str],
) -> None:
    settings, candles, model_id = saved_model
    result = run_backtest(
        candles, settings, symbol="BTC/USDT", timeframe="1h", algorithms=[], model_id=model_id
    )
    model = result.models[0]
    assert result.mode == "fixed_model" and model.model_id == model_id
    live = predict_history(load_model(settings.ml.registry_dir, model_id), candles)
    pd.testing.assert_series_equal(
        model.proba_up.dropna(), live, check_names=False, check_freq=False
    )
    assert model.in_sample and model.in_sample_bars > 0
    assert [s.label for s in model.segments] == ["in-sample", "out-of-sample"]
    assert model.segments[0].end == model.train_range[1]


def test_run_backtest_fixed_model_after_training_range_is_not_in_sample(
    saved_model: tuple[Settings, pd.DataFrame, str],
) -> None:
    settings, candles, model_id = saved_model
    later = settings.model_copy(
        update={"backtest": settings.backtest.model_copy(update={"start": candles.index[1500]})}
    )
    result = run_backtest(
        candles, later, symbol="BTC/USDT", timeframe="1h", algorithms=[], model_id=model_id
    )
    model = result.models[0]
    assert not model.in_sample and model.in_sample_bars == 0
    assert [s.label for s in model.segments] == ["out-of-sample"]
    assert not math.isnan(model.classification.accuracy)


def test_run_backtest_fixed_model_refuses_another_timeframe(
    saved_model: tuple[Settings, pd.DataFrame, str],
) -> None:
    settings, _, model_id = saved_model
    candles_4h = make_ohlcv(600, timeframe="4h")
    with pytest.raises(ConfigError, match="--timeframe 1h"):
        run_backtest(
            candles_4h,
            settings,
            symbol="BTC/USDT",
            timeframe="4h",
            algorithms=[],
            model_id=model_id,
        )


def test_run_backtest_with_atr_stop_uses_backtrader_for_the_fee_sweep(
    bt_candles: pd.DataFrame, tmp_path: Path
) -> None:
    settings = small_settings(
        tmp_path,
        strategy={"stop_loss": {"kind": "atr", "value": 1.0}},
        backtest={"fee_sensitivity_bps": [0, 10]},
    )
    result = run_backtest(
        bt_candles.iloc[:1300], settings, symbol="BTC/USDT", timeframe="1h", algorithms=["logreg"]
    )
    model = result.models[0]
    assert model.fee_sensitivity.engine == "backtrader"
    assert math.isnan(model.engine_gap)
    point = model.fee_sensitivity.points[1]
    assert point.total_return == pytest.approx(model.trading.total_return, rel=1e-12)


def test_engine_gap_flags_engines_that_disagree(
    bt_candles: pd.DataFrame, bt_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    frame = bt_candles.iloc[:300].copy()
    planned = positions_from_proba(np.full(len(frame), 0.6), bt_settings.decision.policy)
    side, size = planned.side, planned.size  # long from the second candle to the end
    costs = bt_settings.strategy
    twin_final = simulate_signals(
        frame,
        side,
        sizes=size,
        cash=costs.cash,
        fee_rate=costs.fee_rate,
        slippage_bps=costs.slippage_bps,
        position_fraction=costs.position_fraction,
    ).final_equity
    assert engine_gap(frame, twin_final, side=side, size=size, strategy=costs) == 0.0
    with caplog.at_level(logging.WARNING):
        gap = engine_gap(frame, twin_final * 1.01, side=side, size=size, strategy=costs)
    assert gap == pytest.approx(0.01 / 1.01)
    assert log_has(caplog, "disagree", logging.WARNING)


def test_run_backtest_auto_mode_chooses_a_policy_per_fold_from_earlier_folds(
    bt_result: BacktestResult, bt_settings: Settings
) -> None:
    model = bt_result.models[0]
    decision = model.decision
    assert bt_settings.decision.mode == "auto" and decision.mode == "auto"
    assert decision.n_trials == len(policy_grid(bt_settings.decision.grid))
    assert [c.fold for c in decision.choices] == [s.number for s in model.segments]
    starts = [c.start for c in decision.choices]
    assert starts[0] == 0 and [c.stop for c in decision.choices][:-1] == starts[1:]
    assert all(c.window_start <= c.start for c in decision.choices)
    first = decision.choices[0]  # nothing out-of-sample before the first fold: flat
    assert decision.chosen(first).policy.stay_flat
    assert (model.predictions["signal"].iloc[first.start : first.stop] == 0).all()
    np.testing.assert_array_equal(model.predictions["signal"].to_numpy(), decision.side)
    held = np.sign(model.run.position.to_numpy())[1:]  # backtrader traded the chosen path
    np.testing.assert_array_equal(held, decision.side[:-1])
    assert bt_result.selection.source == model.name  # one model: its own path is the headline


def test_run_backtest_fixed_mode_trades_the_configured_policy(
    bt_candles: pd.DataFrame, tmp_path: Path
) -> None:
    policy = {"entry_threshold": 0.51, "exit_threshold": 0.5, "min_hold_bars": 4}
    settings = small_settings(tmp_path, decision={"mode": "fixed", "policy": policy})
    result = run_backtest(
        bt_candles, settings, symbol="BTC/USDT", timeframe="1h", algorithms=["logreg"]
    )
    model = result.models[0]
    proba = model.proba_up.reindex(result.candles.index).to_numpy()
    expected = positions_from_proba(proba, settings.decision.policy)
    np.testing.assert_array_equal(model.predictions["signal"].to_numpy(), expected.side)
    held = np.sign(model.run.position.to_numpy())[1:]
    np.testing.assert_array_equal(held, expected.side[:-1])
    closed = model.run.trades[~model.run.trades["is_open"]]
    assert len(closed) > 5 and (closed["bars_held"] >= 4).all()
    assert all(c.reason == "fixed policy" for c in model.decision.choices)
    assert model.engine_gap < 1e-9


def test_run_backtest_saved_model_trades_a_fixed_policy(
    saved_model: tuple[Settings, pd.DataFrame, str],
) -> None:
    settings, candles, model_id = saved_model
    assert settings.decision.mode == "auto"
    result = run_backtest(
        candles, settings, symbol="BTC/USDT", timeframe="1h", algorithms=[], model_id=model_id
    )
    assert result.settings.decision.mode == "fixed"
    assert result.models[0].decision.mode == "fixed"


def test_run_backtest_saved_model_trades_the_policy_saved_with_it(
    saved_model: tuple[Settings, pd.DataFrame, str],
) -> None:
    """As in the bot and the API: the manifest's validated policy, not decision.policy."""
    settings, candles, model_id = saved_model
    root = settings.ml.registry_dir
    manifest = read_manifest(root, model_id)
    odd = DecisionPolicy(entry_threshold=0.51, exit_threshold=0.42, min_hold_bars=7)
    validated = ValidatedPolicy(policy=odd, chosen_by="test", n_candidates=1)
    artifact = load_model(root, model_id)
    copy_id = save_model(
        ModelArtifact(artifact.estimator, manifest.model_copy(update={"decision": validated})),
        root,
    )
    result = run_backtest(
        candles, settings, symbol="BTC/USDT", timeframe="1h", algorithms=[], model_id=copy_id
    )
    assert result.models[0].decision.candidates[0].policy == odd
    configured = settings.model_copy(
        update={"decision": settings.decision.model_copy(update={"live_policy": "config"})}
    )
    result = run_backtest(
        candles, configured, symbol="BTC/USDT", timeframe="1h", algorithms=[], model_id=copy_id
    )
    assert result.models[0].decision.candidates[0].policy == settings.decision.policy


def test_run_backtest_refuses_several_horizons_in_holdout_mode(
    bt_candles: pd.DataFrame, tmp_path: Path
) -> None:
    settings = small_settings(
        tmp_path, ml={"walk_forward": {"mode": "holdout"}}, backtest={"horizons": [1, 4]}
    )
    with pytest.raises(ConfigError, match="holdout"):
        run_backtest(bt_candles, settings, symbol="BTC/USDT", timeframe="1h", algorithms=["logreg"])


def test_auto_mode_with_a_single_test_window_says_it_had_nothing_to_choose_on(
    bt_candles: pd.DataFrame, tmp_path: Path
) -> None:
    settings = small_settings(tmp_path, ml={"walk_forward": {"mode": "holdout"}})
    result = run_backtest(
        bt_candles, settings, symbol="BTC/USDT", timeframe="1h", algorithms=["logreg"]
    )
    assert "NO earlier out-of-sample candles" in result.selection.stats.verdict[0]


def test_fold_returns_compound_to_the_whole_period(bt_result: BacktestResult) -> None:
    """Each fold is measured from the equity before its first candle (the cash for fold 1)."""
    stats = bt_result.selection.stats
    for field, total in (
        ("net_return", bt_result.selection.trading.total_return),
        ("buy_and_hold_return", bt_result.buy_and_hold.total_return),
    ):
        compounded = np.prod([1 + getattr(f, field) for f in stats.folds]) - 1
        assert compounded == pytest.approx(total, rel=1e-9, abs=1e-12), field
