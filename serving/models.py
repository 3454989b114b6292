"""The one current-model cache of the bot and the API: reload on promotion, staleness, policy.

Each (symbol, timeframe) keeps its current model in memory. The tiny registry pointer is
re-read at most every `recheck_seconds` (0 for the bot: every tick; about a second in API
workers), so a promotion by any process (`serving.promotion.promote`) takes effect without a
restart. A loaded model carries the decision policy it trades (`ml.decision.live_policy`) and,
when asked for, its verified fast scorer (`serving.scorer`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core.echo import echo_items
from core.errors import FeatureMismatchError, ModelError, ModelNotFoundError
from core.settings import DecisionSettings
from core.timeframes import ensure_utc
from core.types import Signal
from ml.decision import (
    LivePolicy,
    action_from_flat,
    actions_from_flat,
    live_policy,
    log_live_policy,
)
from ml.registry import ModelArtifact, ModelManifest, current_model_id, load_model
from serving.scorer import Scorer, make_scorer, reference_scorer

logger = logging.getLogger(__name__)

ModelLoader = Callable[[Path, str], ModelArtifact]
POINTER_RECHECK_SECONDS = 1.0
"""How stale a cached "current model" may be in an API worker after a promotion elsewhere."""


class NoModelYetError(ModelNotFoundError):
    """No model was trained and promoted for this pair yet; train one (served as 503)."""


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A loaded current model: artifact, the policy it trades and its scorer.

    `policy_json` is that policy as the `policy` object of prediction responses and webhooks.
    """

    artifact: ModelArtifact
    policy: LivePolicy
    scorer: Scorer
    feature_index: Mapping[str, int]
    policy_json: Mapping[str, Any]

    @property
    def manifest(self) -> ModelManifest:
        """The model's manifest."""
        return self.artifact.manifest

    @property
    def model_id(self) -> str:
        """The model's id."""
        return self.artifact.model_id

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's features, in model order."""
        return self.scorer.feature_names

    def row_from_mapping(self, features: Mapping[str, float]) -> npt.NDArray[np.float64]:
        """A (1, n_features) row in model order; every feature present and nothing extra.

        Raises:
            FeatureMismatchError: naming the missing and the unknown features.
        """
        check_feature_names(self, features.keys())
        names = self.feature_names
        row = np.fromiter((features[name] for name in names), dtype=np.float64, count=len(names))
        return row.reshape(1, -1)

    def proba_up_one(self, features: Mapping[str, float]) -> float:
        """`proba_up` of one mapping of feature values (checked like `row_from_mapping`)."""
        check_feature_names(self, features.keys())
        return self.scorer.score_one(features)

    def proba_up(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """`proba_up` of rows already in model feature order."""
        return self.scorer.score(X)

    def actions_from_flat(
        self, proba_up: npt.ArrayLike
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64]]:
        """Side and size the policy takes at each row, from a flat state (no history)."""
        return actions_from_flat(proba_up, self.policy.policy)

    def action_from_flat(self, proba_up: float) -> tuple[Signal, float]:
        """`actions_from_flat` of one row, without numpy's per-call cost."""
        return action_from_flat(proba_up, self.policy.policy)


def check_feature_names(model: ServedModel, names: Collection[str], *, where: str = "") -> None:
    """Raise `FeatureMismatchError` unless `names` are exactly the model's features.

    The message names at most a few missing and unknown features (`core.echo`).
    """
    index = model.feature_index
    if len(names) == len(index) and all(n in index for n in names):
        return
    given = set(names)
    missing = [name for name in model.feature_names if name not in given]
    extra = sorted(name for name in given if name not in index)
    parts = [
        f"missing {echo_items(missing)}" if missing else "",
        f"unknown {echo_items(extra)}" if extra else "",
    ]
    detail = "; ".join(part for part in parts if part)
    raise FeatureMismatchError(
        f"{where}features do not match model {model.model_id}: {detail}; "
        "send exactly the features listed by GET /features"
    )


def policy_json(policy: LivePolicy) -> dict[str, Any]:
    """The `policy` object of prediction responses (`api.schemas.PolicyOut`)."""
    return {
        "source": policy.source,
        "description": policy.description,
        "rule": policy.policy.model_dump(mode="json"),
    }


def serve_artifact(
    artifact: ModelArtifact, *, decision: DecisionSettings, compile_scorer: bool = True
) -> ServedModel:
    """Wrap a loaded model: its live policy (logged) and its scorer (compiled and verified,
    or the reference `predict_proba` path when `compile_scorer` is False)."""
    policy = live_policy(artifact.manifest.decision, decision)
    manifest = artifact.manifest
    log_live_policy(f"{manifest.symbol} {manifest.timeframe}", artifact.model_id, policy)
    scorer = make_scorer(artifact) if compile_scorer else reference_scorer(artifact)
    return ServedModel(
        artifact=artifact,
        policy=policy,
        scorer=scorer,
        feature_index={name: i for i, name in enumerate(scorer.feature_names)},
        policy_json=policy_json(policy),
    )


@dataclass(slots=True)
class _Entry:
    model: ServedModel
    checked_at: float


class ModelCache:
    """The current model of each (symbol, timeframe), loaded once and kept in memory.

    `known_pairs` are the configured pairs: a pair outside them without a current model is
    "unknown" (ModelNotFoundError, 404) rather than "not trained yet" (NoModelYetError, 503);
    with no `known_pairs` every pair counts as configured (the bot). `max_age` warns once per
    model when its training data is older than that at the `now` of `current`.
    """

    def __init__(
        self,
        root: Path,
        *,
        decision: DecisionSettings | None = None,
        known_pairs: Collection[tuple[str, str]] = (),
        max_age: timedelta | None = None,
        recheck_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        compile_scorer: bool = False,
        loader: ModelLoader = load_model,
    ) -> None:
        self._root = root
        self._decision = decision or DecisionSettings()
        self._known = frozenset(known_pairs)
        self._max_age = max_age
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._compile = compile_scorer
        self._loader = loader
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._stale_warned: set[str] = set()
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The registry directory."""
        return self._root

    @property
    def known_pairs(self) -> frozenset[tuple[str, str]]:
        """The configured (symbol, timeframe) pairs."""
        return self._known

    def current(self, symbol: str, timeframe: str, *, now: datetime | None = None) -> ServedModel:
        """The current model of (symbol, timeframe).

        Raises:
            NoModelYetError: the pair is configured but no model was promoted (503).
            ModelNotFoundError: the pair is neither configured nor has a model (404).
            ModelError: the model cannot be loaded or belongs to another market.
        """
        key = (symbol, timeframe)
        entry = self._entries.get(key)
        moment = self._clock()
        if entry is None or moment - entry.checked_at >= self._recheck_seconds:
            with self._lock:
                model = self._refresh(key, self._entries.get(key), moment)
        else:
            model = entry.model
        if now is not None:
            self._warn_if_stale(model.artifact, now)
        return model

    def current_or_none(self, symbol: str, timeframe: str) -> ServedModel | None:
        """Like `current`, but None when no model has been promoted for the pair."""
        if current_model_id(self._root, symbol, timeframe) is None:
            return None
        return self.current(symbol, timeframe)

    def check_known(self, symbol: str, timeframe: str) -> None:
        """Raise `ModelNotFoundError` (404) for a pair neither configured nor ever promoted."""
        if not self._known or (symbol, timeframe) in self._known:
            return
        if current_model_id(self._root, symbol, timeframe) is None:
            raise self._missing(symbol, timeframe)

    def forget(self, symbol: str, timeframe: str) -> None:
        """Drop the cached model of a pair (after a promotion in this process)."""
        with self._lock:
            self._entries.pop((symbol, timeframe), None)

    def _refresh(self, key: tuple[str, str], entry: _Entry | None, moment: float) -> ServedModel:
        symbol, timeframe = key
        model_id = current_model_id(self._root, symbol, timeframe)
        if model_id is None:
            self._entries.pop(key, None)
            raise self._missing(symbol, timeframe)
        if entry is not None and entry.model.model_id == model_id:
            entry.checked_at = moment
            return entry.model
        model = self._load(symbol, timeframe, model_id, previous=entry)
        self._entries[key] = _Entry(model=model, checked_at=moment)
        return model

    def _load(
        self, symbol: str, timeframe: str, model_id: str, *, previous: _Entry | None
    ) -> ServedModel:
        artifact = self._loader(self._root, model_id)
        manifest = artifact.manifest
        if (manifest.symbol, manifest.timeframe) != (symbol, timeframe):
            raise ModelError(
                f"the current-model pointer of {symbol} {timeframe} names {model_id}, which was "
                f"trained for {manifest.symbol} {manifest.timeframe}; promote a model of the "
                "right market"
            )
        model = serve_artifact(artifact, decision=self._decision, compile_scorer=self._compile)
        if previous is None:
            logger.info("Loaded model %s for %s %s", model_id, symbol, timeframe)
        else:
            logger.info(
                "Model of %s %s changed: %s -> %s (reloaded)",
                symbol,
                timeframe,
                previous.model.model_id,
                model_id,
            )
        return model

    def _missing(self, symbol: str, timeframe: str) -> ModelNotFoundError:
        if not self._known or (symbol, timeframe) in self._known:
            return NoModelYetError(
                f"no current model for {symbol} {timeframe} in {self._root}; train one with "
                f"`cryptopred train --symbol {symbol} --timeframe {timeframe}` (the first "
                "model of a pair becomes current), promote one with `cryptopred models promote "
                "MODEL_ID`, or remove the market from the configuration"
            )
        configured = ", ".join(f"{s} {t}" for s, t in sorted(self._known))
        return ModelNotFoundError(
            f"unknown symbol/timeframe {symbol} {timeframe}: not configured and no model "
            f"trained for it; configured pairs: {configured}"
        )

    def _warn_if_stale(self, artifact: ModelArtifact, now: datetime) -> None:
        if self._max_age is None or artifact.model_id in self._stale_warned:
            return
        train_end = ensure_utc(artifact.manifest.train_end)
        age = ensure_utc(now) - train_end
        if age > self._max_age:
            self._stale_warned.add(artifact.model_id)
            logger.warning(
                "Model %s is stale: its training data ends %s, %s ago (bot.max_model_age %s); "
                "retrain it with `cryptopred train` or set bot.retrain.every",
                artifact.model_id,
                f"{train_end:%Y-%m-%d %H:%M}Z",
                _days(age),
                _days(self._max_age),
            )


def _days(delta: timedelta) -> str:
    """A duration in days for log lines.

    >>> _days(timedelta(days=3, hours=12))
    '3.5 d'
    """
    return f"{delta.total_seconds() / 86_400:.1f} d"
