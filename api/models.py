"""The API's model cache: current models by (symbol, timeframe), reloaded when promoted."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from api.inference import Scorer, make_scorer
from core.echo import echo_items
from core.errors import FeatureMismatchError, ModelNotFoundError
from core.settings import DecisionSettings
from core.types import Signal
from ml.decision import (
    LivePolicy,
    action_from_flat,
    actions_from_flat,
    live_policy,
    log_live_policy,
)
from ml.registry import ModelArtifact, ModelManifest, current_model_id, load_model

logger = logging.getLogger(__name__)

POINTER_RECHECK_SECONDS = 1.0
"""How stale a cached "current model" may be in another worker after a promotion."""


class NoModelYetError(ModelNotFoundError):
    """No model was trained and promoted for this pair yet; train one (served as 503)."""


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A loaded current model with its fast scorer, feature lookup and the decision policy
    it trades (`policy_json`: that policy as the `policy` object of prediction responses)."""

    artifact: ModelArtifact
    scorer: Scorer
    feature_names: tuple[str, ...]
    feature_index: Mapping[str, int]
    policy: LivePolicy
    policy_json: Mapping[str, Any]

    @property
    def manifest(self) -> ModelManifest:
        """The model's manifest."""
        return self.artifact.manifest

    def row_from_mapping(self, features: Mapping[str, float]) -> npt.NDArray[np.float64]:
        """A (1, n_features) row in model order; every feature present and nothing extra.

        Raises:
            FeatureMismatchError: naming the missing and the unknown features.
        """
        check_feature_names(self, features.keys())
        return np.fromiter(
            (features[name] for name in self.feature_names),
            dtype=np.float64,
            count=len(self.feature_names),
        ).reshape(1, -1)

    def proba_up_one(self, features: Mapping[str, float]) -> float:
        """`proba_up` of one mapping of feature values (checked like `row_from_mapping`)."""
        score_one = self.scorer.score_one
        if score_one is None:
            return float(self.scorer.score(self.row_from_mapping(features))[0])
        check_feature_names(self, features.keys())
        return score_one(features)

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


def check_feature_names(model: LoadedModel, names: Collection[str], *, where: str = "") -> None:
    """Raise `FeatureMismatchError` unless `names` are exactly the model's features.

    The message names at most a few missing and unknown features (`core.echo`), however many
    keys the request sent.
    """
    if len(names) == len(model.feature_names) and all(n in model.feature_index for n in names):
        return
    given = set(names)
    missing = [name for name in model.feature_names if name not in given]
    extra = sorted(name for name in given if name not in model.feature_index)
    parts = [
        f"missing {echo_items(missing)}" if missing else "",
        f"unknown {echo_items(extra)}" if extra else "",
    ]
    detail = "; ".join(part for part in parts if part)
    raise FeatureMismatchError(
        f"{where}features do not match model {model.manifest.model_id}: {detail}; "
        "send exactly the features listed by GET /features"
    )


def _describe_pairs(pairs: Collection[tuple[str, str]]) -> str:
    return ", ".join(f"{symbol} {timeframe}" for symbol, timeframe in sorted(pairs))


@dataclass(slots=True)
class _Entry:
    model: LoadedModel
    checked_at: float


@dataclass(slots=True)
class ModelStore:
    """Loads each pair's current model once; re-reads the pointer every few seconds at most.

    `known_pairs` are the configured (symbol, timeframe) pairs: a pair outside them that has
    no current model is "unknown" (404) rather than "not trained yet" (503). `decision`
    chooses the policy each model trades (`ml.decision.live_policy`).
    """

    registry_dir: Path
    known_pairs: frozenset[tuple[str, str]]
    recheck_seconds: float = POINTER_RECHECK_SECONDS
    clock: Callable[[], float] = time.monotonic
    decision: DecisionSettings = field(default_factory=DecisionSettings)
    _entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self, symbol: str, timeframe: str) -> LoadedModel:
        """The current model of (symbol, timeframe).

        Raises:
            NoModelYetError: the pair is configured but no model was promoted (503).
            ModelNotFoundError: the pair is neither configured nor has a model (404).
            ModelIntegrityError: the model file is corrupt (503).
        """
        key = (symbol, timeframe)
        entry = self._entries.get(key)
        now = self.clock()
        if entry is not None and now - entry.checked_at < self.recheck_seconds:
            return entry.model
        with self._lock:
            return self._refresh(key, entry, now)

    def current_or_none(self, symbol: str, timeframe: str) -> LoadedModel | None:
        """Like `current`, but None when no model has been promoted for the pair."""
        if current_model_id(self.registry_dir, symbol, timeframe) is None:
            return None
        return self.current(symbol, timeframe)

    def check_known(self, symbol: str, timeframe: str) -> None:
        """Raise `ModelNotFoundError` (404) for a pair neither configured nor ever promoted."""
        if (symbol, timeframe) in self.known_pairs:
            return
        if current_model_id(self.registry_dir, symbol, timeframe) is None:
            raise self._missing(symbol, timeframe)

    def forget(self, symbol: str, timeframe: str) -> None:
        """Drop the cached model of a pair (after a promotion in this process)."""
        with self._lock:
            self._entries.pop((symbol, timeframe), None)

    def _refresh(self, key: tuple[str, str], entry: _Entry | None, now: float) -> LoadedModel:
        symbol, timeframe = key
        model_id = current_model_id(self.registry_dir, symbol, timeframe)
        if model_id is None:
            self._entries.pop(key, None)
            raise self._missing(symbol, timeframe)
        if entry is not None and entry.model.manifest.model_id == model_id:
            entry.checked_at = now
            return entry.model
        model = load_served_model(self.registry_dir, model_id, decision=self.decision)
        self._entries[key] = _Entry(model=model, checked_at=now)
        logger.info("Serving model %s for %s %s", model_id, symbol, timeframe)
        return model

    def _missing(self, symbol: str, timeframe: str) -> ModelNotFoundError:
        if (symbol, timeframe) in self.known_pairs:
            return NoModelYetError(
                f"no model yet for {symbol} {timeframe}; train one with `cryptopred train "
                f"--symbol {symbol} --timeframe {timeframe}` (the first model of a pair "
                "becomes current) or promote one with `cryptopred models promote MODEL_ID`"
            )
        return ModelNotFoundError(
            f"unknown symbol/timeframe {symbol} {timeframe}: not configured and no model "
            f"trained for it; configured pairs: {_describe_pairs(self.known_pairs)}"
        )


def load_served_model(
    registry_dir: Path, model_id: str, *, decision: DecisionSettings | None = None
) -> LoadedModel:
    """Load a model (hash-checked), build its verified fast scorer and choose its policy."""
    artifact = load_model(registry_dir, model_id)
    names = tuple(artifact.manifest.feature_names)
    policy = live_policy(artifact.manifest.decision, decision or DecisionSettings())
    manifest = artifact.manifest
    log_live_policy(f"{manifest.symbol} {manifest.timeframe}", model_id, policy)
    return LoadedModel(
        artifact=artifact,
        scorer=make_scorer(artifact),
        feature_names=names,
        feature_index={name: position for position, name in enumerate(names)},
        policy=policy,
        policy_json=policy_json(policy),
    )


def policy_json(policy: LivePolicy) -> dict[str, Any]:
    """The `policy` object of prediction responses (`api.schemas.PolicyOut`)."""
    return {
        "source": policy.source,
        "description": policy.description,
        "rule": policy.policy.model_dump(mode="json"),
    }
