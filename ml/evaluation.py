"""Pure evaluation functions: classification metrics, baselines, significance and chart points."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import binomtest
from sklearn import metrics as skm

from core.errors import NotEnoughDataError

logger = logging.getLogger(__name__)

ArrayLike = npt.ArrayLike
BASELINE_NAMES: tuple[str, ...] = ("always_up", "train_majority", "persistence", "reversal")


@dataclass(frozen=True, slots=True)
class ClassificationMetrics:
    """Binary UP/DOWN metrics; `positive_rate` is the share of rows predicted UP."""

    n: int
    accuracy: float
    balanced_accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float
    log_loss: float
    brier: float
    mcc: float
    confusion: tuple[tuple[int, int], tuple[int, int]]
    positive_rate: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict (NaN becomes None; confusion as nested lists)."""
        out = asdict(self)
        out["confusion"] = [list(row) for row in self.confusion]
        return {key: _json_number(value) for key, value in out.items()}


@dataclass(frozen=True, slots=True)
class Baselines:
    """Accuracy of the naive predictors every model must beat."""

    always_up: float
    train_majority: float
    persistence: float
    reversal: float

    @property
    def best_name(self) -> str:
        """Name of the most accurate baseline (ties: first in `BASELINE_NAMES`)."""
        values = self.to_dict()
        return max(BASELINE_NAMES, key=lambda name: values[name])

    @property
    def best_accuracy(self) -> float:
        """Accuracy of the most accurate baseline."""
        return float(self.to_dict()[self.best_name])

    def to_dict(self) -> dict[str, float]:
        """Plain dict of baseline accuracies."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Significance:
    """Is the out-of-sample accuracy better than the best baseline, and how sure is ROC-AUC?"""

    accuracy: float
    baseline: str
    baseline_accuracy: float
    p_value: float
    roc_auc: float
    roc_auc_ci: tuple[float, float]
    level: float
    block_bars: int
    n_boot: int

    def is_significant(self, *, alpha: float = 0.05) -> bool:
        """True when the binomial test rejects "no better than the best baseline" at `alpha`."""
        return self.p_value < alpha

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict."""
        out = asdict(self)
        out["roc_auc_ci"] = [_json_number(v) for v in self.roc_auc_ci]
        return {key: _json_number(value) for key, value in out.items()}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_arrays(
    y_true: ArrayLike, proba_up: ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    y = np.asarray(y_true).astype(np.int64, copy=False).ravel()
    proba = np.asarray(proba_up, dtype=np.float64).ravel()
    if y.shape != proba.shape:
        raise ValueError(f"y_true has {y.size} rows but proba_up has {proba.size}")
    if y.size == 0:
        raise NotEnoughDataError("cannot compute metrics on zero predictions; widen the test range")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 (DOWN) and 1 (UP)")
    if not (np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()):
        raise ValueError("proba_up must be finite probabilities in [0, 1]")
    return y, proba


def roc_auc(y_true: ArrayLike, proba_up: ArrayLike) -> float:
    """ROC-AUC by ranks (ties count one half), NaN when only one class is present.

    Same value as `sklearn.metrics.roc_auc_score`, without its per-call validation overhead
    (it runs inside permutation importance and the bootstrap).

    >>> roc_auc([1, 0, 1, 1, 0], [0.9, 0.2, 0.4, 0.6, 0.7])
    0.6666666666666666
    """
    y, proba = _as_arrays(y_true, proba_up)
    uniques, inverse = np.unique(proba, return_inverse=True)
    return _weighted_auc(y, inverse, uniques.size, np.ones(y.size))


def _safe_ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def classification_metrics(
    y_true: ArrayLike, proba_up: ArrayLike, *, threshold: float | ArrayLike = 0.5
) -> ClassificationMetrics:
    """All classification metrics of UP probabilities; UP is predicted when `proba_up >= threshold`.

    `threshold` may be one number or one per row (walk-forward folds each choose their own).
    Ratios with an empty denominator are 0 (sklearn's `zero_division=0`); ROC-AUC is NaN when
    `y_true` holds a single class. Formulas: sklearn's metric docs; MCC from the confusion matrix.
    """
    y, proba = _as_arrays(y_true, proba_up)
    pred = (proba >= np.asarray(threshold, dtype=np.float64)).astype(np.int64)
    tp = int(np.sum((pred == 1) & (y == 1)))
    tn = int(np.sum((pred == 0) & (y == 0)))
    fp = int(np.sum((pred == 1) & (y == 0)))
    fn = int(np.sum((pred == 0) & (y == 1)))
    precision, recall = _safe_ratio(tp, tp + fp), _safe_ratio(tp, tp + fn)
    # balanced accuracy averages the recall of the classes present (sklearn's definition)
    class_recalls = [tp / (tp + fn)] if tp + fn else []
    class_recalls += [tn / (tn + fp)] if tn + fp else []
    mcc_denominator = math.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    clipped = np.clip(proba, np.finfo(np.float64).eps, 1 - np.finfo(np.float64).eps)
    return ClassificationMetrics(
        n=int(y.size),
        accuracy=(tp + tn) / y.size,
        balanced_accuracy=float(np.mean(class_recalls)),
        precision=precision,
        recall=recall,
        f1=_safe_ratio(2 * tp, 2 * tp + fp + fn),
        roc_auc=roc_auc(y, proba),
        log_loss=float(-np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))),
        brier=float(np.mean((proba - y) ** 2)),
        mcc=_safe_ratio(tp * tn - fp * fn, mcc_denominator),
        confusion=((tn, fp), (fn, tp)),
        positive_rate=float(pred.mean()),
    )


def classification_report_text(
    y_true: ArrayLike, proba_up: ArrayLike, *, threshold: float | ArrayLike = 0.5
) -> str:
    """sklearn's per-class precision/recall/F1 table with DOWN/UP row names."""
    y, proba = _as_arrays(y_true, proba_up)
    pred = (proba >= np.asarray(threshold, dtype=np.float64)).astype(np.int64)
    report = skm.classification_report(
        y, pred, labels=[0, 1], target_names=["DOWN", "UP"], digits=3, zero_division=0
    )
    return str(report)


def baseline_accuracies(
    y_true: ArrayLike, *, previous_direction: ArrayLike, train_majority: int | ArrayLike
) -> Baselines:
    """Accuracy of always-UP, the training-majority class, persistence (last direction again)
    and reversal (the opposite of the last direction: hourly crypto closes often mean-revert).

    `train_majority` is one class or one per row (each walk-forward fold has its own majority).
    Taking the best of persistence and reversal after the fact favours the baselines: the
    comparison is conservative on purpose.

    >>> baseline_accuracies([1, 0, 1, 1], previous_direction=[0, 0, 1, 0], train_majority=0)
    Baselines(always_up=0.75, train_majority=0.25, persistence=0.5, reversal=0.5)
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    previous = np.asarray(previous_direction).astype(np.int64).ravel()
    majority = np.broadcast_to(np.asarray(train_majority).astype(np.int64), y.shape)
    if y.size == 0 or previous.shape != y.shape:
        raise ValueError(
            f"need as many previous directions ({previous.size}) as labels ({y.size}), and > 0"
        )
    return Baselines(
        always_up=float(np.mean(y == 1)),
        train_majority=float(np.mean(y == majority)),
        persistence=float(np.mean(y == previous)),
        reversal=float(np.mean(y == 1 - previous)),
    )


def binomial_p_value(n_correct: int, n: int, p0: float) -> float:
    """One-sided p-value of `n_correct` hits in `n` tries when the true hit rate is only `p0`.

    >>> round(binomial_p_value(60, 100, 0.5), 4)
    0.0284
    """
    if n <= 0:
        return math.nan
    p0 = min(max(p0, 0.0), 1.0)
    return float(binomtest(int(n_correct), int(n), p0, alternative="greater").pvalue)


def _weighted_auc(
    y: npt.NDArray[np.int64],
    inverse: npt.NDArray[np.intp],
    n_unique: int,
    weights: npt.NDArray[np.float64],
) -> float:
    """ROC-AUC of rows weighted by `weights` (ties count one half), via per-score class weights."""
    pos = np.bincount(inverse, weights=weights * y, minlength=n_unique)
    neg = np.bincount(inverse, weights=weights * (1 - y), minlength=n_unique)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return math.nan
    neg_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (total_pos * total_neg))


def block_bootstrap_auc_ci(
    y_true: ArrayLike,
    proba_up: ArrayLike,
    *,
    block_bars: int,
    n_boot: int = 500,
    seed: int,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of ROC-AUC from a moving-block bootstrap (keeps serial dependence).

    Blocks of `block_bars` consecutive rows are drawn with replacement until the sample is as
    long as the data (Kunsch 1989). Returns (nan, nan) when AUC is undefined.
    """
    y, proba = _as_arrays(y_true, proba_up)
    n = y.size
    block = int(min(max(block_bars, 1), n))
    uniques, inverse = np.unique(proba, return_inverse=True)
    rng = np.random.default_rng(seed)
    n_blocks = -(-n // block)
    offsets = np.arange(block)
    aucs = np.empty(n_boot)
    for i in range(n_boot):
        starts = rng.integers(0, n - block + 1, size=n_blocks)
        rows = (starts[:, None] + offsets).ravel()[:n]
        weights = np.bincount(rows, minlength=n).astype(np.float64)
        aucs[i] = _weighted_auc(y, inverse, uniques.size, weights)
    aucs = aucs[np.isfinite(aucs)]
    if aucs.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(aucs, [tail, 1.0 - tail])
    return (float(low), float(high))


def assess_significance(
    y_true: ArrayLike,
    proba_up: ArrayLike,
    *,
    threshold: float | ArrayLike,
    baselines: Baselines,
    block_bars: int,
    seed: int,
    n_boot: int = 500,
    level: float = 0.95,
    horizon_bars: int = 1,
) -> Significance:
    """Binomial test of accuracy against the best baseline plus a block-bootstrap ROC-AUC CI.

    Labels over `horizon_bars > 1` overlap, so consecutive hits are not independent trials: the
    binomial test then uses an effective sample of n / horizon trials at the same hit rate (a
    crude but conservative correction; without it an edge-free predictor is "significant" about
    twice as often as the nominal level at h = 24).
    """
    y, proba = _as_arrays(y_true, proba_up)
    pred = (proba >= np.asarray(threshold, dtype=np.float64)).astype(np.int64)
    n_correct = int(np.sum(pred == y))
    n_eff = max(1, int(y.size) // max(1, horizon_bars))
    k_eff = round(n_correct / y.size * n_eff)
    ci = block_bootstrap_auc_ci(
        y, proba, block_bars=block_bars, n_boot=n_boot, seed=seed, level=level
    )
    return Significance(
        accuracy=n_correct / y.size,
        baseline=baselines.best_name,
        baseline_accuracy=baselines.best_accuracy,
        p_value=binomial_p_value(k_eff, n_eff, baselines.best_accuracy),
        roc_auc=roc_auc(y, proba),
        roc_auc_ci=ci,
        level=level,
        block_bars=int(block_bars),
        n_boot=n_boot,
    )


def calibration_curve_points(
    y_true: ArrayLike,
    proba_up: ArrayLike,
    *,
    n_bins: int = 10,
    strategy: str = "quantile",
) -> pd.DataFrame:
    """Reliability-diagram points: per bin the mean predicted UP probability and the UP share.

    `strategy="quantile"` gives bins of equal counts (predictions cluster near 0.5);
    `"uniform"` gives equal-width bins over [0, 1]. Empty bins are left out.
    """
    y, proba = _as_arrays(y_true, proba_up)
    if strategy == "quantile":
        edges = np.unique(np.quantile(proba, np.linspace(0.0, 1.0, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    if edges.size < 2:
        edges = np.array([proba[0], proba[0]])
    bins = np.clip(np.searchsorted(edges, proba, side="right") - 1, 0, edges.size - 2)
    frame = pd.DataFrame({"bin": bins, "proba": proba, "y": y})
    grouped = frame.groupby("bin", sort=True).agg(
        mean_proba=("proba", "mean"), fraction_up=("y", "mean"), count=("y", "size")
    )
    grouped.insert(0, "bin_upper", edges[grouped.index.to_numpy() + 1])
    grouped.insert(0, "bin_lower", edges[grouped.index.to_numpy()])
    return grouped.reset_index(drop=True)


def roc_curve_points(y_true: ArrayLike, proba_up: ArrayLike) -> pd.DataFrame:
    """ROC curve points (fpr, tpr, threshold); the leading infinite threshold is shown as 1.0."""
    y, proba = _as_arrays(y_true, proba_up)
    if len(np.unique(y)) < 2:
        raise NotEnoughDataError("a ROC curve needs both UP and DOWN rows; widen the range")
    fpr, tpr, thresholds = skm.roc_curve(y, proba)
    thresholds = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})


def wilson_interval(n_correct: int, n: int, *, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927; good at small n and near
    0 or 1, unlike the normal interval). `z` = 1.96 for 95 %, 2.576 for 99 %.

    >>> tuple(round(x, 4) for x in wilson_interval(56, 100))
    (0.4623, 0.6533)
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n <= 0:
        return 0.0, 1.0
    p = n_correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
