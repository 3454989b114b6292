"""Model registry: `<root>/<id>/model.joblib` + `manifest.json`, hash-checked; current pointers."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import FeatureMismatchError, ModelIntegrityError, ModelNotFoundError
from core.settings import DecisionPolicy, FeatureSettings, LabelSettings
from core.types import ModelId, ModelName

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
CURRENT_DIR = "current"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_MAX_PROBLEM_CHARS = 160


class _Typed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FoldSummary(_Typed):
    """One walk-forward fold of the manifest: ranges, out-of-sample metrics, threshold."""

    number: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    n_train: int
    n_test: int
    metrics: dict[str, Any]
    threshold: float


class WalkForwardSummary(_Typed):
    """Pooled out-of-sample metrics, baselines and significance of the walk-forward."""

    metrics: dict[str, Any]
    baselines: dict[str, Any]
    significance: dict[str, Any]
    folds: list[FoldSummary]
    fit_seconds: float

    def metric(self, name: str) -> float | None:
        """One pooled metric as a float (None when absent or not a number)."""
        value = self.metrics.get(name)
        return float(value) if isinstance(value, int | float) else None


class ReturnBand(_Typed):
    """Quantiles of the net return over `window_bars` candles of the validated policy's
    out-of-sample path (every window of that length, overlapping): what live trading should
    look like over as many candles. `p01` .. `p99` are the 1st .. 99th percentiles."""

    window_bars: int
    n_windows: int
    p01: float
    p05: float
    p50: float
    p95: float
    p99: float


class ValidatedPolicy(_Typed):
    """The decision policy the bot and the API trade for this model, and its evidence.

    `policy` was chosen by the nested rule on all out-of-sample predictions of the training
    walk-forward (the choice for candles after it); `nested_*` describe the honest, nested
    backtest of that rule over the same walk-forward (each fold chosen on earlier folds).
    """

    policy: DecisionPolicy
    chosen_by: str
    n_candidates: int
    nested_net_return: float | None = None
    nested_buy_and_hold_return: float | None = None
    deflated_sharpe: float | None = None
    probability_of_overfitting: float | None = None
    return_bands: tuple[ReturnBand, ...] = ()
    """Expectation bands (empty for models trained before they were recorded)."""


class ModelManifest(BaseModel):
    """Everything needed to trust, reproduce and serve a saved model."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model_id: str
    exchange: str
    symbol: str
    timeframe: str
    algorithm: ModelName
    params: dict[str, Any]
    feature_names: list[str]
    feature_config: FeatureSettings
    feature_config_hash: str
    labels: LabelSettings
    threshold: float
    train_start: datetime
    train_end: datetime
    n_train_rows: int
    candles_sha256: str
    walk_forward: WalkForwardSummary | None = None
    decision: ValidatedPolicy | None = None
    validation_metrics: dict[str, Any] | None = None
    feature_importance: dict[str, float] = {}
    feature_ranges: dict[str, tuple[float, float]] = {}
    library_versions: dict[str, str] = {}
    git_commit: str | None = None
    settings_hash: str = ""
    created_at: datetime
    model_sha256: str = ""


@dataclass(frozen=True, slots=True)
class ModelArtifact:
    """A fitted estimator (with `predict_proba`) and its manifest."""

    estimator: Any
    manifest: ModelManifest

    @property
    def model_id(self) -> ModelId:
        """The registry id of this model."""
        return ModelId(self.manifest.model_id)


def symbol_slug(symbol: str) -> str:
    """Filesystem-safe symbol.

    >>> symbol_slug("BTC/USDT")
    'BTC_USDT'
    """
    return re.sub(r"[^A-Za-z0-9]+", "_", symbol).strip("_")


def make_model_id(symbol: str, timeframe: str, algorithm: str, trained_until: datetime) -> ModelId:
    """STYLE B4 model id.

    >>> make_model_id("BTC/USDT", "1h", "lightgbm", datetime(2021, 6, 10, tzinfo=UTC))
    'BTC_USDT-1h-lightgbm-20210610T0000Z'
    """
    stamp = trained_until.astimezone(UTC).strftime("%Y%m%dT%H%MZ")
    return ModelId(f"{symbol_slug(symbol)}-{timeframe}-{algorithm}-{stamp}")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(artifact: ModelArtifact, root: Path) -> ModelId:
    """Write the model atomically under a unique id (suffix `-2`, `-3`... on collision)."""
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        joblib.dump(artifact.estimator, staging / MODEL_FILE)
        model_id = _unique_id(root, artifact.manifest.model_id)
        manifest = artifact.manifest.model_copy(
            update={"model_id": model_id, "model_sha256": file_sha256(staging / MODEL_FILE)}
        )
        _write_json(staging / MANIFEST_FILE, json.loads(manifest.model_dump_json()))
        staging.rename(root / model_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("Saved model %s to %s", model_id, root / model_id)
    return ModelId(model_id)


def _unique_id(root: Path, wanted: str) -> str:
    _check_id(wanted)
    candidate, n = wanted, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate


def _check_id(model_id: str) -> None:
    if not _ID_RE.match(model_id) or model_id == CURRENT_DIR:
        raise ModelNotFoundError(f"invalid model id {model_id!r}; use an id from `models list`")


def read_manifest(root: Path, model_id: str) -> ModelManifest:
    """The manifest of one model, validated."""
    _check_id(model_id)
    path = root / model_id / MANIFEST_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"model {model_id!r} not found in {root}; see `cryptopred models list` or train one"
        )
    try:
        return ModelManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, OSError, UnicodeDecodeError) as e:
        raise ModelIntegrityError(
            f"{path} is unreadable or corrupt ({manifest_problem(e)}); retrain the model"
        ) from e


def manifest_problem(error: ValidationError | OSError | UnicodeDecodeError) -> str:
    """One short line saying what is wrong with a manifest (not pydantic's multi-line dump).

    >>> manifest_problem(UnicodeDecodeError("utf-8", b"\\xff", 0, 1, "invalid start byte"))
    'not UTF-8 text'
    """
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    problems = error.errors(include_url=False, include_input=False)
    where = ".".join(str(part) for part in problems[0]["loc"])
    first = f"{where}: {problems[0]['msg']}" if where else problems[0]["msg"]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return " ".join(first.split())[:_MAX_PROBLEM_CHARS] + more


def load_model(
    root: Path, model_id: str, *, expected_features: Sequence[str] | None = None
) -> ModelArtifact:
    """Load a model after checking its file hash (joblib is pickle) and, optionally, its features.

    Raises:
        ModelNotFoundError: no such model.
        ModelIntegrityError: the model file is missing, tampered with or unreadable.
        FeatureMismatchError: `expected_features` differ from the model's feature list.
    """
    manifest = read_manifest(root, model_id)
    model_path = root / model_id / MODEL_FILE
    if not model_path.is_file():
        raise ModelIntegrityError(f"{model_path} is missing; retrain the model")
    actual = file_sha256(model_path)
    if actual != manifest.model_sha256:
        raise ModelIntegrityError(
            f"{model_path} does not match its manifest (sha256 {actual[:12]}... != "
            f"{manifest.model_sha256[:12]}...); refusing to load it. Retrain the model."
        )
    if expected_features is not None:
        check_features(manifest, expected_features)
    try:
        estimator = joblib.load(model_path)
    except Exception as e:  # a hash-verified file that still fails to unpickle: library mismatch
        raise ModelIntegrityError(
            f"cannot load {model_path} ({type(e).__name__}: {e}); library versions at training: "
            f"{manifest.library_versions}. Retrain with the installed versions."
        ) from e
    return ModelArtifact(estimator=estimator, manifest=manifest)


def check_features(manifest: ModelManifest, features: Sequence[str]) -> None:
    """Raise `FeatureMismatchError` listing missing and extra features."""
    expected = list(manifest.feature_names)
    if list(features) == expected:
        return
    missing = [name for name in expected if name not in set(features)]
    extra = [name for name in features if name not in set(expected)]
    detail = f"missing {missing}, extra {extra}" if missing or extra else "same names, other order"
    raise FeatureMismatchError(
        f"features do not match model {manifest.model_id}: {detail}; "
        "retrain the model or restore the feature config it was trained with"
    )


@dataclass(frozen=True, slots=True)
class BrokenModel:
    """A model folder whose manifest cannot be read; `reason` is one line."""

    model_id: str
    reason: str


def list_models(root: Path) -> list[ModelManifest]:
    """Manifests of every readable model, oldest first; broken ones are logged and skipped."""
    manifests, broken = scan_models(root)
    for item in broken:
        logger.warning("Skipping model folder %s: %s", root / item.model_id, item.reason)
    return manifests


def scan_models(root: Path) -> tuple[list[ModelManifest], list[BrokenModel]]:
    """Readable models (oldest first) and broken model folders (by name) of the registry.

    A folder is a model folder when it holds a manifest or a model file; `current/` and hidden
    staging folders are not.
    """
    if not root.is_dir():
        return [], []
    manifests, broken = [], []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name == CURRENT_DIR or folder.name.startswith("."):
            continue
        if not (folder / MANIFEST_FILE).exists() and not (folder / MODEL_FILE).exists():
            continue
        try:
            manifests.append(read_manifest(root, folder.name))
        except (ModelIntegrityError, ModelNotFoundError) as e:
            broken.append(BrokenModel(folder.name, _broken_reason(e, folder)))
    return sorted(manifests, key=lambda m: (m.created_at, m.model_id)), broken


def _broken_reason(error: ModelIntegrityError | ModelNotFoundError, folder: Path) -> str:
    cause = error.__cause__
    if isinstance(cause, ValidationError | OSError | UnicodeDecodeError):
        return f"{MANIFEST_FILE}: {manifest_problem(cause)}"
    if not (folder / MANIFEST_FILE).is_file():
        return f"no {MANIFEST_FILE}"
    return str(error)


def _pointer_path(root: Path, symbol: str, timeframe: str) -> Path:
    return root / CURRENT_DIR / f"{symbol_slug(symbol)}-{timeframe}.json"


def promote_model(root: Path, model_id: str) -> ModelManifest:
    """Make `model_id` the current model of its (symbol, timeframe)."""
    manifest = read_manifest(root, model_id)
    pointer = _pointer_path(root, manifest.symbol, manifest.timeframe)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    _write_json(pointer, {"model_id": model_id, "promoted_at": datetime.now(UTC).isoformat()})
    logger.info("Promoted %s for %s %s", model_id, manifest.symbol, manifest.timeframe)
    return manifest


def current_model_id(root: Path, symbol: str, timeframe: str) -> ModelId | None:
    """Id of the current model of (symbol, timeframe), if one was promoted."""
    pointer = _pointer_path(root, symbol, timeframe)
    if not pointer.is_file():
        return None
    try:
        model_id = json.loads(pointer.read_text(encoding="utf-8"))["model_id"]
    except (ValueError, KeyError, OSError) as e:
        raise ModelIntegrityError(f"{pointer} is corrupt ({e}); promote a model again") from e
    return ModelId(str(model_id))


def load_current_model(root: Path, symbol: str, timeframe: str) -> ModelArtifact:
    """Load the current model of (symbol, timeframe)."""
    model_id = current_model_id(root, symbol, timeframe)
    if model_id is None:
        raise ModelNotFoundError(
            f"no current model for {symbol} {timeframe} in {root}; train one with "
            f"`cryptopred train --symbol {symbol} --timeframe {timeframe}`"
        )
    return load_model(root, model_id)


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically: a unique temp file in the same directory, then rename.

    Unique per call (not per process), so concurrent promotions in one API worker never share
    a temp file and readers only ever see a complete old or new file.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True, default=str)
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
