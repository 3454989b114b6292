"""The typed `Settings` tree and `load_settings(path)`; the only place config.yaml is read."""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from numbers import Integral, Real
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.errors import ConfigError
from core.types import MODEL_NAMES, ModelName, Timeframe

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}

SECRET_ENV_VARS = {
    "api_key": "CRYPTOPRED_API_KEY",
    "exchange_api_key": "CRYPTOPRED_EXCHANGE_API_KEY",
    "exchange_secret": "CRYPTOPRED_EXCHANGE_SECRET",
    "db_url": "CRYPTOPRED_DB_URL",
}


def _parse_duration(value: Any) -> Any:
    """Accept "30m", "12h", "7d", "2w" (and plain seconds) for timedelta fields."""
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as '30m', '12h' or '7d', got {value!r}")
        return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])
    return value


def _as_utc(value: Any) -> Any:
    """Read dates and naive datetimes as UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if hasattr(value, "year") and hasattr(value, "month"):  # a bare date
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_duration)]
UtcDatetime = Annotated[datetime, BeforeValidator(_as_utc)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


_SCALAR_NOUNS: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number"}
_MAX_ECHO_CHARS = 40


def _scalar_type(annotation: Any) -> type | None:
    """`bool`, `int` or `float` when a field (or `X | None`) is one of them, else None.

    >>> _scalar_type(int | None), _scalar_type(str), _scalar_type(bool)
    (<class 'int'>, None, <class 'bool'>)
    """
    args = [arg for arg in get_args(annotation) if arg is not NoneType]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return _scalar_type(args[0])
    return annotation if annotation in _SCALAR_NOUNS else None


def _element_type(annotation: Any) -> type | None:
    """The scalar type of every element of a `tuple[int, ...]`-like field, else None."""
    args = [arg for arg in get_args(annotation) if arg is not Ellipsis]
    if get_origin(annotation) is not tuple or not args or len(set(args)) != 1:
        return None
    return _scalar_type(args[0])


def _check_scalar(value: Any, kind: type) -> None:
    """Refuse what lax pydantic would coerce: `true` or `"42"` for an int, `"1.5"` or NaN for
    a float, `1` or `"yes"` for a bool."""
    if value is None:
        return  # `X | None` accepts it; pydantic reports a None for a required value
    wanted = Integral if kind is int else Real
    ok = isinstance(value, bool) if kind is bool else isinstance(value, wanted)
    if not ok or (kind is not bool and isinstance(value, bool)):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)[:_MAX_ECHO_CHARS]
        got = "text" if isinstance(value, str) else type(value).__name__
        hint = " (write it without quotes)" if isinstance(value, str) else ""
        raise PydanticCustomError(
            "strict_scalar",
            "expected {noun}, got {got} {shown}{hint}",
            {"noun": _SCALAR_NOUNS[kind], "got": got, "shown": shown, "hint": hint},
        )
    if kind is float and not math.isfinite(value):
        raise PydanticCustomError(
            "finite_number", "must be a finite number, got {value}", {"value": str(value)}
        )


class _Section(BaseModel):
    """Base of every config section: unknown keys, coerced scalars and NaN/inf are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        """Booleans, integers and floats must be written as such in YAML (no coercion)."""
        if info.field_name is None:
            return value
        annotation = cls.model_fields[info.field_name].annotation
        kind = _scalar_type(annotation)
        if kind is not None:
            _check_scalar(value, kind)
        element = _element_type(annotation)
        if element is not None and isinstance(value, list | tuple):
            for item in value:
                _check_scalar(item, element)
        return value


# --------------------------------------------------------------------------- data
class QualitySettings(_Section):
    """What to do with each kind of bad candle (see data/quality.py)."""

    duplicates: Literal["keep_precise", "keep_last", "fail"] = "keep_precise"
    gaps: Literal["report", "fail"] = "report"
    invalid_ohlc: Literal["drop", "repair", "fail"] = "drop"
    non_positive: Literal["drop", "fail"] = "drop"
    jumps: Literal["drop", "warn", "fail"] = "drop"
    jump_threshold_log: float = Field(default=0.5, gt=0.0)
    max_examples: int = Field(default=5, ge=1)


class DataSettings(_Section):
    """Which candles the main job uses and where the cache lives."""

    symbol: str = "BTC/USDT"
    timeframe: Timeframe = "1h"
    since: UtcDatetime = datetime(2020, 1, 1, tzinfo=UTC)
    file: Path | None = None
    cache_dir: Path = Path("var/cache")
    quality: QualitySettings = QualitySettings()

    @field_validator("symbol")
    @classmethod
    def _symbol_has_quote(cls, value: str) -> str:
        if "/" not in value:
            raise ValueError(f"symbol must look like 'BTC/USDT' (ccxt format), got {value!r}")
        return value


class RetrySettings(_Section):
    """Bounded exponential backoff for temporary exchange errors."""

    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0.0)
    max_backoff_seconds: float = Field(default=30.0, ge=0.0)


class ExchangeSettings(_Section):
    """The ccxt exchange to talk to."""

    id: str = "binance"
    base_url: str | None = None
    timeout_ms: int = Field(default=10_000, ge=100)
    page_limit: int = Field(default=1000, ge=1, le=1000)
    retry: RetrySettings = RetrySettings()

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/") if value else value


# --------------------------------------------------------------------------- ml
FeatureGroup = Literal["returns", "volatility", "momentum", "trend", "volume", "candle", "calendar"]
FEATURE_GROUPS: tuple[FeatureGroup, ...] = (
    "returns",
    "volatility",
    "momentum",
    "trend",
    "volume",
    "candle",
    "calendar",
)


class FeatureSettings(_Section):
    """Feature groups and indicator parameters for `ml.features.build_features`."""

    groups: tuple[FeatureGroup, ...] = FEATURE_GROUPS
    return_lags: tuple[int, ...] = (1, 2, 3, 6, 12, 24)
    volatility_windows: tuple[int, ...] = (12, 24, 72)
    rsi_window: int = Field(default=14, ge=2)
    macd_fast: int = Field(default=12, ge=2)
    macd_slow: int = Field(default=26, ge=3)
    macd_signal: int = Field(default=9, ge=2)
    bollinger_window: int = Field(default=20, ge=2)
    bollinger_std: float = Field(default=2.0, gt=0.0)
    atr_window: int = Field(default=14, ge=2)
    stoch_window: int = Field(default=14, ge=2)
    stoch_smooth: int = Field(default=3, ge=1)
    volume_window: int = Field(default=24, ge=2)
    ma_windows: tuple[int, ...] = (10, 50, 200)

    @model_validator(mode="after")
    def _check(self) -> FeatureSettings:
        if not self.groups:
            raise ValueError("at least one feature group is needed")
        if self.macd_fast >= self.macd_slow:
            raise ValueError("macd_fast must be smaller than macd_slow")
        for name in ("return_lags", "volatility_windows", "ma_windows"):
            if any(window < 1 for window in getattr(self, name)):
                raise ValueError(f"{name} must contain positive integers")
        return self


class LabelSettings(_Section):
    """How the target is defined."""

    method: Literal["direction", "triple_barrier"] = "direction"
    horizon_bars: int = Field(default=1, ge=1)
    deadband: float = Field(default=0.0, ge=0.0, lt=0.5)
    take_profit_atr: float = Field(default=2.0, gt=0.0)
    stop_loss_atr: float = Field(default=2.0, gt=0.0)
    deadband_from_costs: bool = False

    @model_validator(mode="after")
    def _one_deadband(self) -> LabelSettings:
        if self.deadband_from_costs and self.deadband > 0:
            raise ValueError("set either deadband or deadband_from_costs, not both")
        return self


class WalkForwardSettings(_Section):
    """Walk-forward (or chronological holdout) evaluation."""

    mode: Literal["expanding", "rolling", "holdout"] = "expanding"
    train_bars: int = Field(default=8760, ge=50)
    validation_bars: int = Field(default=720, ge=0)
    step_bars: int = Field(default=2000, ge=10)
    gap_bars: int = Field(default=1, ge=0)
    embargo_bars: int = Field(default=0, ge=0)
    max_folds: int | None = Field(default=None, ge=1)
    holdout_fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)

    @field_validator("holdout_fractions")
    @classmethod
    def _fractions_sum_to_one(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(part <= 0 for part in value) or abs(sum(value) - 1.0) > 1e-9:
            raise ValueError("holdout_fractions must be three positive numbers summing to 1")
        return value


class PreprocessingSettings(_Section):
    """The per-fold preprocessing steps of every pipeline."""

    scaler: Literal["standard", "minmax", "none"] = "standard"
    correlation_threshold: float | None = Field(default=0.95, gt=0.0, le=1.0)
    class_weight: Literal["balanced", "none"] = "balanced"


class ModelSettings(_Section):
    """Which algorithm to train and parameter overrides per algorithm."""

    algorithm: ModelName = "lightgbm"
    params: dict[ModelName, dict[str, Any]] = Field(default_factory=dict)


class TuningSettings(_Section):
    """Optuna search on each fold's validation slice (off by default)."""

    enabled: bool = False
    n_trials: int = Field(default=20, ge=1)
    timeout_seconds: float | None = Field(default=120.0, gt=0)
    metric: Literal["log_loss", "roc_auc"] = "log_loss"


class CalibrationSettings(_Section):
    """Probability calibration and threshold choice on validation data."""

    method: Literal["none", "sigmoid", "isotonic"] = "sigmoid"
    tune_threshold: bool = False


class MLSettings(_Section):
    """Everything the ML core needs."""

    seed: int = 42
    features: FeatureSettings = FeatureSettings()
    labels: LabelSettings = LabelSettings()
    walk_forward: WalkForwardSettings = WalkForwardSettings()
    preprocessing: PreprocessingSettings = PreprocessingSettings()
    model: ModelSettings = ModelSettings()
    tuning: TuningSettings = TuningSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    registry_dir: Path = Path("var/models")

    @model_validator(mode="before")
    @classmethod
    def _signal_moved(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "signal" in data:
            raise ValueError(
                "ml.signal was replaced by decision.policy: long_threshold -> entry_threshold, "
                "exit_threshold -> exit_threshold, short_threshold -> short_entry_threshold, "
                "allow_short -> allow_short; set decision.mode: fixed to trade exactly that rule"
            )
        return data

    @model_validator(mode="after")
    def _gap_covers_horizon(self) -> MLSettings:
        if self.walk_forward.gap_bars < self.labels.horizon_bars:
            raise ValueError(
                f"walk_forward.gap_bars ({self.walk_forward.gap_bars}) must be >= "
                f"labels.horizon_bars ({self.labels.horizon_bars}), otherwise training labels "
                "overlap the test window"
            )
        return self


# --------------------------------------------------------------------------- decision
class DecisionPolicy(_Section):
    """How `proba_up` becomes a position: one policy for the backtest, the bot and the API.

    Long: enter at `proba_up >= entry_threshold`, leave at `proba_up < exit_threshold`
    (hysteresis). Short (only with `allow_short`): enter at `proba_up <= short_entry_threshold`,
    leave at `proba_up > short_exit_threshold`. A position is held at least `min_hold_bars`
    candles; after an exit the policy stays flat at least `cooldown_bars` candles. `sizing`
    "fixed" trades the whole `strategy.position_fraction`; "proba" trades the fraction
    `min(1, edge_scale * |2 * proba_up - 1|)` of it, fixed at entry. `stay_flat` never trades
    (what the nested search picks when no rule has enough evidence).
    """

    entry_threshold: Probability = 0.55
    exit_threshold: Probability = 0.50
    min_hold_bars: int = Field(default=0, ge=0)
    cooldown_bars: int = Field(default=0, ge=0)
    sizing: Literal["fixed", "proba"] = "fixed"
    edge_scale: float = Field(default=5.0, gt=0.0)
    allow_short: bool = False
    short_entry_threshold: Probability = 0.45
    short_exit_threshold: Probability = 0.50
    stay_flat: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> DecisionPolicy:
        if self.exit_threshold > self.entry_threshold:
            raise ValueError("exit_threshold must be <= entry_threshold")
        if self.short_entry_threshold > self.short_exit_threshold:
            raise ValueError("short_entry_threshold must be <= short_exit_threshold")
        if self.allow_short and self.short_entry_threshold >= self.entry_threshold:
            raise ValueError("short_entry_threshold must be below entry_threshold")
        return self


class PolicyGridSettings(_Section):
    """Candidate policies of the nested search: every combination (exit above entry skipped).

    Short candidates mirror the long thresholds (short entry = 1 - entry, short exit =
    1 - exit) when `allow_short` lists true. "Stay flat" is always a candidate as well.
    """

    entry_threshold: tuple[Probability, ...] = (0.52, 0.55, 0.60)
    exit_threshold: tuple[Probability, ...] = (0.50, 0.45)
    min_hold_bars: tuple[Annotated[int, Field(ge=0)], ...] = (0, 12, 48)
    cooldown_bars: tuple[Annotated[int, Field(ge=0)], ...] = (0, 24)
    sizing: tuple[Literal["fixed", "proba"], ...] = ("fixed",)
    allow_short: tuple[bool, ...] = (False,)

    @model_validator(mode="after")
    def _non_empty(self) -> PolicyGridSettings:
        for name in type(self).model_fields:
            if not getattr(self, name):
                raise ValueError(f"{name} must list at least one value")
        usable = any(
            exit_ <= entry and not (short and 1 - entry >= entry)
            for entry in self.entry_threshold
            for exit_ in self.exit_threshold
            for short in self.allow_short
        )
        if not usable:
            raise ValueError(
                "no usable policy: every exit_threshold is above its entry_threshold (or a short "
                "grid has entries <= 0.5, which mirror onto themselves)"
            )
        return self


class DecisionSettings(_Section):
    """The decision layer: a fixed policy, or one chosen nested per walk-forward fold."""

    mode: Literal["auto", "fixed"] = "auto"
    policy: DecisionPolicy = DecisionPolicy()
    grid: PolicyGridSettings = PolicyGridSettings()
    objective: Literal["log_growth", "sharpe", "sortino"] = "log_growth"
    min_trades: int = Field(default=5, ge=0)
    min_t_stat: float = Field(default=0.0, ge=0.0)
    deflate_evidence: bool = True
    evidence_alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    selection_bars: int | None = Field(default=None, ge=10)
    live_policy: Literal["manifest", "config"] = "manifest"
    pbo_blocks: int = Field(default=16, ge=2)
    bootstrap_resamples: int = Field(default=1000, ge=100)

    @field_validator("pbo_blocks")
    @classmethod
    def _even_blocks(cls, value: int) -> int:
        if value % 2:
            raise ValueError("pbo_blocks must be even (half the blocks are in-sample)")
        return value


# --------------------------------------------------------------------------- strategy / backtest
class ExitRuleSettings(_Section):
    """An optional stop-loss or take-profit, as a percent of entry or an ATR multiple."""

    kind: Literal["none", "percent", "atr"] = "none"
    value: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _value_when_enabled(self) -> ExitRuleSettings:
        if self.kind != "none" and self.value <= 0:
            raise ValueError(f"value must be > 0 when kind is {self.kind!r}")
        return self


class StrategySettings(_Section):
    """Trading rules and costs of the backtest."""

    cash: float = Field(default=10_000.0, gt=0)
    fee_rate: float = Field(default=0.001, ge=0.0, lt=0.1)
    slippage_bps: float = Field(default=0.0, ge=0.0, lt=1000)
    position_fraction: float = Field(default=0.95, gt=0.0, lt=1.0)
    stop_loss: ExitRuleSettings = ExitRuleSettings()
    take_profit: ExitRuleSettings = ExitRuleSettings()


class BacktestSettings(_Section):
    """What `cryptopred backtest` runs and where it writes."""

    models: tuple[ModelName, ...] = ("lightgbm",)
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    reports_dir: Path = Path("var/reports")
    fee_sensitivity_bps: tuple[float, ...] = (0, 2, 5, 10, 15, 20, 25, 30)
    horizons: tuple[Annotated[int, Field(ge=1)], ...] = ()
    self_contained: bool = False  # embed plotly.js in each page (one file that works alone)

    @model_validator(mode="after")
    def _check(self) -> BacktestSettings:
        if not self.models:
            raise ValueError(f"models must name at least one of {', '.join(MODEL_NAMES)}")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


# --------------------------------------------------------------------------- bot
class RetrainSettings(_Section):
    """Optional periodic retraining by the bot."""

    every: Duration | None = None
    max_metric_drop: float = Field(default=0.01, ge=0.0)


class WebhookSettings(_Section):
    """Optional JSON POST when a signal changes."""

    url: str | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)


class BotSettings(_Section):
    """The live signal bot."""

    symbols: tuple[str, ...] = ("BTC/USDT",)
    timeframes: tuple[Timeframe, ...] = ("1h",)
    schedule_offset_seconds: float = Field(default=5.0, ge=0)
    poll_seconds: float | None = Field(default=None, gt=0)
    clock: Literal["local", "exchange"] = "local"
    closed_candle_retries: int = Field(default=3, ge=0)
    misfire_grace_seconds: float | None = Field(default=None, gt=0)
    max_backfill_bars: int = Field(default=48, ge=0)
    warmup_bars: int | None = Field(default=None, ge=10)
    max_model_age: Duration = timedelta(days=30)
    model_wait_seconds: float | None = Field(default=30.0, gt=0)
    retrain: RetrainSettings = RetrainSettings()
    webhook: WebhookSettings = WebhookSettings()

    @model_validator(mode="after")
    def _check(self) -> BotSettings:
        if not self.symbols or not self.timeframes:
            raise ValueError("bot needs at least one symbol and one timeframe")
        bad = [symbol for symbol in self.symbols if "/" not in symbol]
        if bad:
            raise ValueError(f"symbols must look like 'BTC/USDT', got {bad}")
        return self


# ------------------------------------------------------------------ api / storage / compute
class ApiSettings(_Section):
    """The REST API and dashboard server."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    max_batch_rows: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=8_000_000, ge=1024)
    rate_limit: str | None = "600/minute"
    cors_origins: tuple[str, ...] = ()
    require_key_for_all: bool = False
    max_tick_age: Duration = timedelta(hours=3)
    trusted_proxies: tuple[IPvAnyNetwork, ...] = ()
    dashboard_refresh_seconds: float = Field(default=30.0, ge=1.0, le=3600.0)
    """How often an open dashboard re-fetches its live panels (paused while the tab is hidden)."""


class StorageSettings(_Section):
    """The database of predictions, bot heartbeats and backtest runs."""

    db_url: str = "sqlite:///var/cryptopred.db"
    busy_timeout_ms: int = Field(default=5000, ge=0)


class ComputeSettings(_Section):
    """Where walk-forward folds and sweeps run."""

    backend: Literal["local", "dask"] = "local"
    n_jobs: int = Field(default=1, ge=-1)
    scheduler_address: str | None = None

    @model_validator(mode="after")
    def _dask_needs_address(self) -> ComputeSettings:
        if self.backend == "dask" and not self.scheduler_address:
            raise ValueError(
                "backend 'dask' needs scheduler_address ('tcp://host:8786' or 'local-cluster')"
            )
        return self


class LoggingSettings(_Section):
    """Log level and an optional log file."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: Path | None = None


class Secrets(_Section):
    """Secrets, read from the environment only (never from config.yaml)."""

    api_key: SecretStr | None = None
    exchange_api_key: SecretStr | None = None
    exchange_secret: SecretStr | None = None
    db_url: SecretStr | None = None


class Settings(_Section):
    """The whole configuration, built once per entry point and passed down."""

    data: DataSettings = DataSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    ml: MLSettings = MLSettings()
    decision: DecisionSettings = DecisionSettings()
    strategy: StrategySettings = StrategySettings()
    backtest: BacktestSettings = BacktestSettings()
    bot: BotSettings = BotSettings()
    api: ApiSettings = ApiSettings()
    storage: StorageSettings = StorageSettings()
    compute: ComputeSettings = ComputeSettings()
    logging: LoggingSettings = LoggingSettings()
    secrets: Secrets = Secrets()

    def ml_for_training(self, *, horizon_bars: int | None = None) -> MLSettings:
        """`ml` as the datasets need it: the label horizon (default: `ml.labels.horizon_bars`)
        and, with `labels.deadband_from_costs`, a dead-band equal to the round-trip cost
        (fee and slippage on both sides), so only moves that could pay for a trade train.
        The purge gap grows to the horizon when it is shorter."""
        labels = self.ml.labels
        update: dict[str, Any] = {}
        if horizon_bars is not None:
            update["horizon_bars"] = horizon_bars
        if labels.deadband_from_costs:
            one_side = self.strategy.fee_rate + self.strategy.slippage_bps / 10_000
            update["deadband"] = 2 * one_side
            update["deadband_from_costs"] = False
        if not update:
            return self.ml
        new_labels = labels.model_copy(update=update)
        walk_forward = self.ml.walk_forward
        if walk_forward.gap_bars < new_labels.horizon_bars:
            walk_forward = walk_forward.model_copy(update={"gap_bars": new_labels.horizon_bars})
        return self.ml.model_copy(update={"labels": new_labels, "walk_forward": walk_forward})


def require_settings(obj: object) -> Settings:
    """The Settings an entry point stored (e.g. in a CLI context); fail clearly otherwise."""
    if not isinstance(obj, Settings):
        raise ConfigError("settings were not loaded; run the command through `cryptopred`")
    return obj


def secrets_from_env(environ: Mapping[str, str] | None = None) -> Secrets:
    """Read the secret values from their environment variables."""
    env = os.environ if environ is None else environ
    values = {field: env[var] for field, var in SECRET_ENV_VARS.items() if env.get(var)}
    return Secrets.model_validate(values)


def load_settings(path: str | Path | None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Load and validate `config.yaml` (or defaults when `path` is None), plus secrets from env.

    Raises:
        ConfigError: the file is missing or unreadable, or a key is unknown or invalid; the
            message names the file, the dotted key and the reason.
    """
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        raw = _read_yaml(Path(path))
    if "secrets" in raw:
        names = ", ".join(SECRET_ENV_VARS.values())
        raise ConfigError(f"{source}: secrets: not allowed in config files; set {names} instead")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_describe_validation_error(source, e)) from e
    secrets = secrets_from_env(environ)
    if secrets.db_url is not None:  # a server URL carries a password: environment only
        storage = settings.storage.model_copy(update={"db_url": secrets.db_url.get_secret_value()})
        settings = settings.model_copy(update={"storage": storage})
    return settings.model_copy(update={"secrets": secrets})


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"{path}: config file not found; pass --config PATH or copy config.yaml from the repo"
        )
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the file: {e}") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (data:, ml:, ...)")
    return loaded


def _describe_validation_error(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        dotted = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(item["loc"])
        lines.append(f"{source}: {dotted}: {message}")
    return "\n".join(lines)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """Suggest the closest valid key for a typo, walking the Settings tree along `loc`."""
    model: Any = Settings
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        model = field.annotation
    allowed = list(getattr(model, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    suffix = f"; did you mean {close[0]!r}?" if close else ""
    return f"{suffix} (allowed: {', '.join(allowed)})" if allowed else suffix
