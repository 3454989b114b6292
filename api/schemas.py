"""Pydantic request and response models of the REST API (strict inputs; never ORM rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api import examples
from api.paper import ExpectationOut
from core.settings import DecisionPolicy
from core.types import Direction, Timeframe
from ml.decision import Action, PolicySource
from ml.registry import ValidatedPolicy

FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
"""A JSON number that is finite: no strings, booleans, null, NaN or Infinity."""

Symbol = Annotated[
    str,
    Field(
        strict=True,
        min_length=3,
        max_length=40,
        pattern=r"^[A-Za-z0-9.\-]+/[A-Za-z0-9.\-]+(:[A-Za-z0-9.\-]+)?$",
        examples=["BTC/USDT"],
    ),
]
"""A ccxt market symbol such as `BTC/USDT`."""

EpochMs = Annotated[int, Field(strict=True, ge=0, le=7_258_118_400_000)]
"""Epoch milliseconds between 1970 and 2200."""

Candle = tuple[EpochMs, FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]
"""One ccxt OHLCV row: `[open_time_ms, open, high, low, close, volume]`."""

MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
"""Registry model ids and backtest run ids (letters, digits, `_.-`; no path separators)."""

ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""Media type of the columnar (Arrow IPC stream) body accepted by `/predict/batch`."""


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())


# ------------------------------------------------------------------------------ requests
class PairQuery(BaseModel):
    """The optional `symbol`/`timeframe` query parameters (defaults: `data.symbol`/`timeframe`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    symbol: Symbol | None = Field(default=None, description="ccxt symbol; default data.symbol")
    timeframe: Timeframe | None = Field(
        default=None, description="candle timeframe; default data.timeframe"
    )


class PredictRequest(_Strict):
    """Ready-made feature values for one candle (names from `GET /features`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.PREDICT_REQUEST]})

    features: dict[str, FiniteFloat]


class BatchRequest(_Strict):
    """Many rows of feature values; predictions come back in the same order."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.BATCH_REQUEST]})

    rows: list[dict[str, FiniteFloat]] = Field(min_length=1)


class CandlesRequest(BaseModel):
    """Raw candles, oldest first; features are computed server-side with `build_features`."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [examples.CANDLES_REQUEST]},
    )

    symbol: Symbol | None = None
    timeframe: Timeframe | None = None
    candles: list[Candle] = Field(min_length=1)


# ------------------------------------------------------------------------------ predictions
DIRECTION_DOC = "The model's call: UP when proba_up >= threshold (scored for accuracy)"
ACTION_DOC = "What the decision policy does: LONG, FLAT or SHORT (not the same as direction)"
SIZE_DOC = "Traded fraction of strategy.position_fraction (0 when FLAT)"


class PolicyOut(_Out):
    """The decision policy behind `action` and where it comes from.

    `source` is "manifest" (the model's validated policy), "config" (`decision.live_policy:
    config` trades `decision.policy`) or "config (model has no validated policy)".
    """

    source: PolicySource
    description: str
    rule: DecisionPolicy


class PredictionOut(_Out):
    """The model's call for one row (`direction`) and, separately, the policy's `action`.

    For one row the action is the policy's decision from a flat position (no history: no
    minimum hold or cooldown in force); for the action given history use `/predict/candles`.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [examples.PREDICTION_OUT]})

    direction: Direction = Field(description=DIRECTION_DOC)
    proba_up: float
    model_id: str
    threshold: float
    symbol: str
    timeframe: str
    action: Action = Field(description=ACTION_DOC)
    size: float = Field(description=SIZE_DOC)
    policy: PolicyOut


class BatchItem(_Out):
    """One row's direction and probability, and the policy's action from a flat position."""

    direction: Direction = Field(description=DIRECTION_DOC)
    proba_up: float
    action: Action = Field(description=ACTION_DOC)
    size: float = Field(description=SIZE_DOC)


class BatchPredictionOut(_Out):
    """Predictions for every row, in request order (each row's action from flat)."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.BATCH_PREDICTION_OUT]})

    model_id: str
    threshold: float
    symbol: str
    timeframe: str
    count: int
    policy: PolicyOut
    predictions: list[BatchItem]


class CandlePredictionOut(PredictionOut):
    """A prediction for the last closed candle of the posted candles.

    `action`, `size` and `bars_held` come from the policy run over the probabilities of every
    posted candle with a complete feature warm-up, oldest first, starting flat: minimum
    holds, cooldowns and entry sizes over that history apply.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [examples.CANDLE_PREDICTION_OUT]})

    candle_open: datetime
    candle_close: datetime
    horizon_bars: int
    candles_used: int
    dropped_forming_candle: bool
    bars_held: int = Field(description="Candles the current position has been held (0 if FLAT)")


class LoggedPrediction(_Out):
    """A prediction the bot logged, with its outcome once the target candle closed.

    `direction` is the model's call; `action`/`size`/`signal` what the bot's policy did.
    `size` and `policy_source` are null for rows logged before they were recorded.
    """

    id: int
    exchange: str
    symbol: str
    timeframe: str
    candle_open: datetime
    target_close: datetime
    horizon_bars: int
    proba_up: float
    direction: Direction = Field(description=DIRECTION_DOC)
    signal: int
    threshold: float
    model_id: str
    created_at: datetime
    is_backfill: bool
    actual_return: float | None
    actual_direction: Direction | None
    is_correct: bool | None
    resolved_at: datetime | None
    action: Action = Field(description=ACTION_DOC)
    size: float | None = Field(description=SIZE_DOC)
    policy_source: str | None


class PredictionPageOut(_Out):
    """One page of logged predictions, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.PREDICTION_PAGE_OUT]})

    items: list[LoggedPrediction]
    next_cursor: str | None


# ------------------------------------------------------------------------------ accuracy
class AccuracyPoint(_Out):
    """Rolling live accuracy after one resolved prediction."""

    candle_open: datetime
    rolling_accuracy: float
    n_in_window: int


class Expectation(_Out):
    """What the model was expected to achieve out of sample."""

    walk_forward_accuracy: float | None
    walk_forward_roc_auc: float | None
    backtest_id: str | None
    backtest_accuracy: float | None


class AccuracyOut(_Out):
    """Live accuracy of logged predictions compared with the out-of-sample expectation."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.ACCURACY_OUT]})

    symbol: str
    timeframe: str
    model_id: str | None
    window: int
    n: int
    accuracy: float | None
    accuracy_ci_low: float | None = Field(
        default=None, description="Wilson 95 % interval of `accuracy`, lower end"
    )
    accuracy_ci_high: float | None = Field(
        default=None, description="Wilson 95 % interval of `accuracy`, upper end"
    )
    roc_auc: float | None
    brier: float | None
    expected: Expectation
    series: list[AccuracyPoint]
    drift: ExpectationOut | None = None
    """The drift check of the pair's paper account and current model (see `/paper`)."""


# ------------------------------------------------------------------------------ models
class FeatureOut(_Out):
    """One input the current model needs."""

    name: str
    description: str
    group: str
    train_min: float | None
    train_max: float | None


class FeaturesOut(_Out):
    """Every feature of the current model, in model order."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.FEATURES_OUT]})

    model_id: str
    symbol: str
    timeframe: str
    features: list[FeatureOut]


class BacktestSummary(_Out):
    """A backtest run and the metrics it recorded for one model."""

    id: str
    created_at: datetime
    symbol: str
    timeframe: str
    models: list[str]
    period_start: datetime
    period_end: datetime
    model_ids: dict[str, str]
    report_url: str | None
    classification: dict[str, Any]
    trading: dict[str, Any]


class DecisionOut(PolicyOut):
    """The policy the bot and the API trade for this model, and the model's validated policy
    with its evidence (null for models trained before the decision layer)."""

    validated: ValidatedPolicy | None


class ModelInfoOut(_Out):
    """The current model's manifest plus the latest backtest that used it."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.MODEL_INFO_OUT]})

    model_id: str
    exchange: str
    symbol: str
    timeframe: str
    algorithm: str
    params: dict[str, Any]
    threshold: float
    labels: dict[str, Any]
    train_start: datetime
    train_end: datetime
    n_train_rows: int
    created_at: datetime
    walk_forward: dict[str, Any] | None
    validation_metrics: dict[str, Any] | None
    feature_importance: dict[str, float]
    library_versions: dict[str, str]
    git_commit: str | None
    inference: Literal["compiled", "predict_proba"]
    backtest: BacktestSummary | None
    decision: DecisionOut


class PromoteOut(_Out):
    """The result of a promotion."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.PROMOTE_OUT]})

    model_id: str
    symbol: str
    timeframe: str
    previous_model_id: str | None


class BacktestListOut(_Out):
    """Recorded backtest runs, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.BACKTEST_LIST_OUT]})

    items: list[BacktestSummary]


class BacktestOut(BacktestSummary):
    """One backtest run with every metric it recorded."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.BACKTEST_OUT]})

    config_hash: str
    metrics: dict[str, Any]


# ------------------------------------------------------------------------------ health
BotState = Literal["absent", "running", "stale", "stopped"]


class HealthOut(_Out):
    """The API's own health (database, current model) and, as a field, the bot's state.

    `status` and the HTTP code (200/503) depend on the database and the model only: an
    API-only deployment is healthy. `bot` is `absent` (no run ever recorded), `running`,
    `stale` (a running bot whose heartbeat is older than `api.max_tick_age` or two ticks: hung,
    or killed with kill -9) or `stopped` (ended, cleanly or after an error); `bot_detail` says
    why when it is not `running`.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [examples.HEALTH_OUT]})

    status: Literal["ok", "unhealthy"]
    reasons: list[str]
    database: str
    symbol: str
    timeframe: str
    model_id: str | None
    model_age_seconds: float | None
    last_tick_at: datetime | None
    last_tick_age_seconds: float | None
    bot: BotState
    bot_detail: str | None = None
    detail: str | None = None


class ErrorOut(BaseModel):
    """Every error response: `detail` names what failed and how to fix it."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.ERROR_OUT]})

    detail: str | list[dict[str, Any]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "Unknown symbol/timeframe pair or id"},
    422: {"model": ErrorOut, "description": "Invalid input; `detail` names the field"},
    503: {"model": ErrorOut, "description": "No model trained yet (the message says how)"},
}
"""OpenAPI error responses shared by the model-backed endpoints."""
