"""In-memory cache of the current model per market, reloaded when another model is promoted."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from core.errors import ModelError, ModelNotFoundError
from core.settings import DecisionSettings
from core.timeframes import ensure_utc
from ml.decision import LivePolicy, live_policy, log_live_policy
from ml.registry import ModelArtifact, current_model_id, load_model

logger = logging.getLogger(__name__)

ModelLoader = Callable[[Path, str], ModelArtifact]


class ModelCache:
    """The current model of each (symbol, timeframe), loaded once and kept in memory.

    Every `get` re-reads the tiny registry pointer, so a promotion (by `cryptopred models
    promote` or the bot's own retraining) takes effect at the next tick without a restart.
    `policy_for` tells which decision policy a loaded model trades (and logs it once).
    """

    def __init__(
        self,
        root: Path,
        *,
        max_age: timedelta | None = None,
        loader: ModelLoader = load_model,
    ) -> None:
        self._root = root
        self._max_age = max_age
        self._loader = loader
        self._models: dict[tuple[str, str], ModelArtifact] = {}
        self._policies: dict[str, tuple[DecisionSettings, LivePolicy]] = {}
        self._stale_warned: set[str] = set()
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The registry directory."""
        return self._root

    def get(self, symbol: str, timeframe: str, *, now: datetime | None = None) -> ModelArtifact:
        """The current model of the market; warns once per model when it is stale at `now`.

        Raises:
            ModelNotFoundError: no model was promoted for the market.
            ModelError: the model cannot be loaded or belongs to another market.
        """
        model_id = current_model_id(self._root, symbol, timeframe)
        if model_id is None:
            raise ModelNotFoundError(
                f"no current model for {symbol} {timeframe} in {self._root}; train one with "
                f"`cryptopred train --symbol {symbol} --timeframe {timeframe}` or remove the "
                "market from bot.symbols / bot.timeframes"
            )
        with self._lock:
            artifact = self._models.get((symbol, timeframe))
            if artifact is None or artifact.model_id != model_id:
                artifact = self._load(symbol, timeframe, model_id, previous=artifact)
                self._models[(symbol, timeframe)] = artifact
        if now is not None:
            self._warn_if_stale(artifact, now)
        return artifact

    def policy_for(self, artifact: ModelArtifact, decision: DecisionSettings) -> LivePolicy:
        """The decision policy `artifact` trades under `decision` (see `ml.decision.live_policy`).

        Logged the first time after the model was loaded: which policy, and where it comes
        from (a WARNING when the model has no validated policy and the config's trades).
        """
        model_id = artifact.model_id
        with self._lock:
            known = self._policies.get(model_id)
            if known is not None and known[0] == decision:
                return known[1]
            live = live_policy(artifact.manifest.decision, decision)
            self._policies[model_id] = (decision, live)
        manifest = artifact.manifest
        log_live_policy(f"{manifest.symbol} {manifest.timeframe}", model_id, live)
        return live

    def _load(
        self, symbol: str, timeframe: str, model_id: str, *, previous: ModelArtifact | None
    ) -> ModelArtifact:
        artifact = self._loader(self._root, model_id)
        self._policies.pop(model_id, None)  # say again which policy a reloaded model trades
        manifest = artifact.manifest
        if (manifest.symbol, manifest.timeframe) != (symbol, timeframe):
            raise ModelError(
                f"the current-model pointer of {symbol} {timeframe} names {model_id}, which was "
                f"trained for {manifest.symbol} {manifest.timeframe}; promote a model of the "
                "right market"
            )
        if previous is None:
            logger.info("Loaded model %s for %s %s", model_id, symbol, timeframe)
        else:
            logger.info(
                "Model of %s %s changed: %s -> %s (reloaded)",
                symbol,
                timeframe,
                previous.model_id,
                model_id,
            )
        return artifact

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
