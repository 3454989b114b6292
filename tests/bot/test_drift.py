"""Drift alarms from the bot's ticks: each raise and each clear is sent once, by the bot whose
tick wrote the marks; a second bot on the same database, a repeated tick or a restarted bot
that writes nothing new stays silent."""

from __future__ import annotations

import json
from collections.abc import Callable

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from bot.deps import BotDeps
from bot.job import run_once
from core.settings import DecisionPolicy, Settings
from ml.registry import MANIFEST_FILE, ModelArtifact, ReturnBand, read_manifest
from serving.expectation import check_expectation
from storage.db import session_scope
from storage.paper import list_paper_marks
from tests.bot.conftest import FakeSource, RecordingNotifier, close_of
from tests.bot.test_job import _with_policy

FIRST, LAST = 1300, 1330
HALF_BAND = 0.004
"""A one-candle band of -+0.4 %: an always-long account leaves and re-enters it often."""


def _with_band(settings: Settings, artifact: ModelArtifact) -> None:
    """Give the registry's model a one-candle return band (its manifest, rewritten on disk)."""
    path = settings.ml.registry_dir / artifact.model_id / MANIFEST_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    band = ReturnBand(
        window_bars=1,
        n_windows=100,
        p01=-HALF_BAND,
        p05=-HALF_BAND,
        p50=0.0,
        p95=HALF_BAND,
        p99=HALF_BAND,
    )
    decision = data["decision"] or {
        "policy": DecisionPolicy().model_dump(),
        "chosen_by": "test",
        "n_candidates": 1,
    }
    data["decision"] = {**decision, "return_bands": [band.model_dump()]}
    path.write_text(json.dumps(data), encoding="utf-8")


def _expected_flips(factory: sessionmaker[Session], settings: Settings, model_id: str):
    """(candle open ms, raised) wherever the check of the stored marks changes state."""
    manifest = read_manifest(settings.ml.registry_dir, model_id)
    with session_scope(factory, read_only=True) as session:
        marks = list_paper_marks(session, symbol="BTC/USDT", timeframe="1h")
    equity = [mark.equity for mark in marks]
    flips, before = [], False
    for i, mark in enumerate(marks):
        # fewer than 30 outcomes over these ticks: only the return check runs
        alarm = check_expectation(manifest, equity=equity[: i + 1], outcomes=[]).alarm
        if alarm != before:
            flips.append((mark.candle_open_ms, alarm))
        before = alarm
    return flips


def test_drift_alarms_are_sent_once_by_the_bot_that_wrote_the_marks(
    make_deps: Callable[..., BotDeps],
    source: FakeSource,
    market_candles: pd.DataFrame,
    session_factory: sessionmaker[Session],
    artifact: ModelArtifact,
) -> None:
    always_long = DecisionPolicy(entry_threshold=0.0, exit_threshold=0.0)
    settings = _with_policy(make_deps().settings, always_long)
    _with_band(settings, artifact)
    first, second = RecordingNotifier(), RecordingNotifier()
    bots = [make_deps(settings=settings, notifier=n) for n in (first, second)]
    leaders = {}
    for row in range(FIRST, LAST + 1):
        source.now = close_of(market_candles, row)
        order = bots if row % 3 else bots[::-1]  # each bot leads some ticks
        leaders[int(market_candles.index[row].value // 1_000_000)] = order[0].notifier
        for deps in order:
            run_once(deps, source.now)
        run_once(order[0], source.now)  # a repeated tick writes nothing, says nothing
    restarted = make_deps(settings=settings, notifier=RecordingNotifier())
    run_once(restarted, source.now)
    flips = _expected_flips(session_factory, settings, artifact.model_id)
    assert len(flips) >= 4 and {raised for _, raised in flips} == {True, False}, "no flips"
    sent = sorted(
        (alarm.candle_open_ms, alarm.raised, id(notifier))
        for notifier in (first, second)
        for alarm in notifier.alarms
    )
    assert sent == sorted((ms, raised, id(leaders[ms])) for ms, raised in flips)
    assert first.alarms and second.alarms  # both bots led a flip
    assert restarted.notifier.alarms == []
    raised = next(alarm for alarm in first.alarms + second.alarms if alarm.raised)
    assert raised.reasons[0].startswith("paper return over the last 1 candles")
    assert raised.model_id == artifact.model_id
