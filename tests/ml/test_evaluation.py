"""Tests of the pure evaluation functions on hand-computed examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn import metrics as skm
from sklearn.metrics import roc_auc_score

from core.errors import NotEnoughDataError
from ml.evaluation import (
    Baselines,
    _weighted_auc,
    assess_significance,
    baseline_accuracies,
    binomial_p_value,
    block_bootstrap_auc_ci,
    calibration_curve_points,
    classification_metrics,
    classification_report_text,
    roc_curve_points,
    wilson_interval,
)

Y = [1, 0, 1, 1, 0]
P = [0.9, 0.2, 0.4, 0.6, 0.7]


def test_classification_metrics_match_hand_computation() -> None:
    # predictions at 0.5: [1, 0, 0, 1, 1] -> tp=2 fn=1 tn=1 fp=1
    m = classification_metrics(Y, P)
    assert m.n == 5
    assert m.confusion == ((1, 1), (1, 2))
    assert m.accuracy == pytest.approx(0.6)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m.roc_auc == pytest.approx(4 / 6)  # 4 of 6 (pos, neg) pairs ordered correctly
    assert m.brier == pytest.approx(1.06 / 5)
    expected_log_loss = -np.mean(np.log([0.9, 0.8, 0.4, 0.6, 0.3]))
    assert m.log_loss == pytest.approx(expected_log_loss)
    assert m.mcc == pytest.approx((2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2))
    assert m.positive_rate == pytest.approx(0.6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_agree_with_sklearn(seed) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    proba = np.round(np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.2, 500), 0, 1), 2)
    pred = (proba >= 0.55).astype(int)
    m = classification_metrics(y, proba, threshold=0.55)
    assert m.accuracy == pytest.approx(skm.accuracy_score(y, pred))
    assert m.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m.precision == pytest.approx(skm.precision_score(y, pred))
    assert m.recall == pytest.approx(skm.recall_score(y, pred))
    assert m.f1 == pytest.approx(skm.f1_score(y, pred))
    assert m.mcc == pytest.approx(skm.matthews_corrcoef(y, pred))
    assert m.roc_auc == pytest.approx(skm.roc_auc_score(y, proba))
    assert m.log_loss == pytest.approx(skm.log_loss(y, proba))
    assert m.brier == pytest.approx(skm.brier_score_loss(y, proba))
    assert m.confusion == tuple(map(tuple, skm.confusion_matrix(y, pred).tolist()))


def test_classification_metrics_threshold_per_row() -> None:
    m = classification_metrics(Y, P, threshold=[0.5, 0.5, 0.3, 0.5, 0.8])
    assert m.confusion == ((2, 0), (0, 3))
    assert m.accuracy == 1.0


def test_classification_metrics_single_class_auc_is_nan() -> None:
    m = classification_metrics([1, 1, 1], [0.6, 0.4, 0.7])
    assert math.isnan(m.roc_auc)
    assert m.accuracy == pytest.approx(2 / 3)
    assert m.balanced_accuracy == pytest.approx(2 / 3)
    assert m.mcc == 0.0 and m.precision == 1.0
    assert json.loads(json.dumps(m.to_dict()))["roc_auc"] is None


def test_classification_metrics_rejects_bad_input() -> None:
    with pytest.raises(NotEnoughDataError):
        classification_metrics([], [])
    with pytest.raises(ValueError, match="rows"):
        classification_metrics([1, 0], [0.5])
    with pytest.raises(ValueError, match="probabilities"):
        classification_metrics([1, 0], [0.5, 1.5])
    with pytest.raises(ValueError, match="0 \\(DOWN\\)"):
        classification_metrics([2, 0], [0.5, 0.5])


def test_classification_metrics_to_dict_is_json() -> None:
    d = classification_metrics(Y, P).to_dict()
    assert d["confusion"] == [[1, 1], [1, 2]]
    assert json.loads(json.dumps(d))["accuracy"] == pytest.approx(0.6)


def test_classification_report_text_names_classes() -> None:
    text = classification_report_text(Y, P)
    assert "DOWN" in text and "UP" in text and "0.667" in text


def test_baseline_accuracies_hand_example_and_best() -> None:
    b = baseline_accuracies(
        [1, 0, 0, 0], previous_direction=[1, 1, 0, 0], train_majority=[1, 0, 0, 0]
    )
    assert b == Baselines(always_up=0.25, train_majority=1.0, persistence=0.75, reversal=0.25)
    assert b.best_name == "train_majority"
    assert b.best_accuracy == 1.0
    assert b.to_dict()["persistence"] == 0.75


def test_baseline_accuracies_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="previous directions"):
        baseline_accuracies([1, 0], previous_direction=[1], train_majority=1)


def test_binomial_p_value_one_sided() -> None:
    assert binomial_p_value(50, 100, 0.5) == pytest.approx(0.5398, abs=1e-4)
    assert binomial_p_value(70, 100, 0.5) < 1e-4
    assert binomial_p_value(30, 100, 0.5) > 0.99
    assert math.isnan(binomial_p_value(0, 0, 0.5))


def test_weighted_auc_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    proba = np.round(rng.uniform(size=300), 1)  # many ties
    uniques, inverse = np.unique(proba, return_inverse=True)
    ones = np.ones(300)
    assert _weighted_auc(y, inverse, uniques.size, ones) == pytest.approx(roc_auc_score(y, proba))
    weights = rng.integers(0, 3, 300).astype(float)
    repeated = np.repeat(np.arange(300), weights.astype(int))
    expected = roc_auc_score(y[repeated], proba[repeated])
    assert _weighted_auc(y, inverse, uniques.size, weights) == pytest.approx(expected)


def test_block_bootstrap_auc_ci_brackets_auc_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    proba = np.clip(0.5 + 0.1 * (y - 0.5) + rng.normal(0, 0.1, 2000), 0, 1)
    auc = roc_auc_score(y, proba)
    low, high = block_bootstrap_auc_ci(y, proba, block_bars=24, n_boot=200, seed=3)
    assert low < auc < high
    assert high - low < 0.1
    assert (low, high) == block_bootstrap_auc_ci(y, proba, block_bars=24, n_boot=200, seed=3)
    assert (low, high) != block_bootstrap_auc_ci(y, proba, block_bars=24, n_boot=200, seed=4)


def test_block_bootstrap_auc_ci_single_class_is_nan() -> None:
    low, high = block_bootstrap_auc_ci([1, 1, 1], [0.2, 0.5, 0.7], block_bars=2, seed=0)
    assert math.isnan(low) and math.isnan(high)


def test_assess_significance_uses_best_baseline() -> None:
    y = np.array([1] * 70 + [0] * 30)
    proba = np.full(100, 0.6)  # always UP: exactly as good as the always-UP baseline
    previous = np.arange(100) % 2  # alternating: a poor persistence baseline
    baselines = baseline_accuracies(y, previous_direction=previous, train_majority=1)
    sig = assess_significance(
        y, proba, threshold=0.5, baselines=baselines, block_bars=5, seed=0, n_boot=50
    )
    assert sig.accuracy == pytest.approx(0.7)
    assert sig.baseline == "always_up"
    assert sig.baseline_accuracy == pytest.approx(0.7)
    assert sig.p_value > 0.4
    assert not sig.is_significant()
    assert json.dumps(sig.to_dict())


def test_calibration_curve_points_quantile_bins() -> None:
    proba = np.linspace(0.0, 1.0, 100)
    y = (proba > 0.5).astype(int)
    points = calibration_curve_points(y, proba, n_bins=4)
    assert list(points.columns) == ["bin_lower", "bin_upper", "mean_proba", "fraction_up", "count"]
    assert points["count"].tolist() == [25, 25, 25, 25]
    assert points["fraction_up"].tolist() == [0.0, 0.0, 1.0, 1.0]
    uniform = calibration_curve_points(y, np.full(100, 0.55), n_bins=10, strategy="uniform")
    assert len(uniform) == 1 and uniform["count"].iloc[0] == 100


def test_roc_curve_points_start_at_origin() -> None:
    points = roc_curve_points(Y, P)
    assert points.iloc[0][["fpr", "tpr"]].tolist() == [0.0, 0.0]
    assert points.iloc[-1][["fpr", "tpr"]].tolist() == [1.0, 1.0]
    assert np.isfinite(points["threshold"]).all()
    with pytest.raises(NotEnoughDataError):
        roc_curve_points([1, 1], [0.2, 0.3])


def test_baselines_reversal_wins_on_mean_reverting_labels() -> None:
    y = np.array([1, 0] * 50)
    previous = np.roll(y, 1)  # last direction; the next one is always the opposite
    baselines = baseline_accuracies(y, previous_direction=previous, train_majority=1)
    assert baselines.reversal == pytest.approx(1.0)
    assert baselines.persistence == pytest.approx(0.0)
    assert baselines.best_name == "reversal"


def test_assess_significance_discounts_overlapping_labels() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2400)
    proba = np.where(rng.random(2400) < 0.53, y, 1 - y) * 0.2 + 0.4  # 53% hits
    baselines = baseline_accuracies(y, previous_direction=np.roll(y, 1), train_majority=1)
    args = {"threshold": 0.5, "baselines": baselines, "block_bars": 24, "seed": 0, "n_boot": 20}
    one = assess_significance(y, proba, **args)
    many = assess_significance(y, proba, horizon_bars=24, **args)
    assert one.accuracy == many.accuracy
    assert many.p_value > one.p_value  # 100 effective trials instead of 2,400


@pytest.mark.parametrize(("successes", "n"), [(121, 216), (0, 5), (5, 5), (1, 1), (530, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_wilson_interval_matches_scipy(successes: int, n: int, confidence: float) -> None:
    expected = binomtest(successes, n).proportion_ci(confidence, method="wilson")
    low, high = wilson_interval(successes, n, confidence=confidence)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)
    assert 0.0 <= low <= successes / n <= high <= 1.0


def test_wilson_interval_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(6, 5)
