"""The compiled scorer reproduces `predict_proba` exactly, and falls back when it cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from xgboost import XGBClassifier

from ml.estimators import CorrelationFilter
from ml.predict import predict_proba_features
from ml.registry import ModelArtifact, load_model, read_manifest
from serving import scorer as inference
from serving.scorer import make_scorer, sample_rows

N_FEATURES = 31


@pytest.fixture(scope="module")
def base_manifest(trained_registry):
    model_id = next(p.name for p in trained_registry.iterdir() if p.name != "current")
    return read_manifest(trained_registry, model_id)


@pytest.fixture(scope="module")
def training_data(base_manifest):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(600, N_FEATURES)), columns=base_manifest.feature_names)
    X.iloc[:, 1] = X.iloc[:, 0] * 0.99 + rng.normal(0, 0.01, 600)  # the filter drops one
    y = (X.iloc[:, 0] + rng.normal(0, 1.0, 600) > 0).astype(int)
    return X, y


def _pipeline(model, scaler=None) -> Pipeline:
    return Pipeline(
        [
            ("scaler", scaler or StandardScaler()),
            ("select", CorrelationFilter(0.95)),
            ("model", model),
        ]
    )


def _calibrated(pipeline: Pipeline, X, y, method: str) -> CalibratedClassifierCV:
    fitted = pipeline.fit(X.iloc[:400], y.iloc[:400])
    return CalibratedClassifierCV(FrozenEstimator(fitted), method=method).fit(
        X.iloc[400:], y.iloc[400:]
    )


ESTIMATORS = {
    "logreg-sigmoid": lambda X, y: _calibrated(
        _pipeline(LogisticRegression(C=0.1)), X, y, "sigmoid"
    ),
    "logreg-isotonic": lambda X, y: _calibrated(_pipeline(LogisticRegression()), X, y, "isotonic"),
    "lightgbm-sigmoid": lambda X, y: _calibrated(
        _pipeline(LGBMClassifier(n_estimators=25, num_leaves=7, verbose=-1, n_jobs=1)),
        X,
        y,
        "sigmoid",
    ),
    "lightgbm-plain": lambda X, y: _pipeline(
        LGBMClassifier(n_estimators=25, num_leaves=7, verbose=-1, n_jobs=1)
    ).fit(X, y),
    "xgboost-sigmoid": lambda X, y: _calibrated(
        _pipeline(XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1)), X, y, "sigmoid"
    ),
    "forest-minmax-clip": lambda X, y: _pipeline(
        RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0, n_jobs=1),
        MinMaxScaler(clip=True),
    ).fit(X, y),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_compiled_scorer_equals_predict_proba(name, base_manifest, training_data) -> None:
    X, y = training_data
    artifact = ModelArtifact(estimator=ESTIMATORS[name](X, y), manifest=base_manifest)
    scorer = make_scorer(artifact)
    assert scorer.is_compiled
    rows = sample_rows(artifact, n_rows=500, seed=123)
    rows[:5] *= 50.0  # far outside the training range too
    expected = predict_proba_features(
        artifact, pd.DataFrame(rows, columns=base_manifest.feature_names)
    )
    np.testing.assert_allclose(scorer.score(rows), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["lightgbm-sigmoid", "lightgbm-plain", "logreg-sigmoid"])
def test_single_rows_match_predict_proba(name, base_manifest, training_data) -> None:
    X, y = training_data
    artifact = ModelArtifact(estimator=ESTIMATORS[name](X, y), manifest=base_manifest)
    scorer = make_scorer(artifact)
    rows = sample_rows(artifact, n_rows=20, seed=9)
    frame = pd.DataFrame(rows, columns=base_manifest.feature_names)
    expected = predict_proba_features(artifact, frame)
    singles = np.concatenate([scorer.score(rows[i : i + 1]) for i in range(len(rows))])
    np.testing.assert_allclose(singles, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_score_one_takes_the_same_compiled_path(name, base_manifest, training_data) -> None:
    X, y = training_data
    artifact = ModelArtifact(estimator=ESTIMATORS[name](X, y), manifest=base_manifest)
    scorer = make_scorer(artifact)
    rows = sample_rows(artifact, n_rows=20, seed=11)
    expected = predict_proba_features(
        artifact, pd.DataFrame(rows, columns=base_manifest.feature_names)
    )
    mappings = [dict(zip(base_manifest.feature_names, row.tolist(), strict=True)) for row in rows]
    got = [scorer.score_one(dict(reversed(list(m.items())))) for m in mappings]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_a_compiled_path_wrong_on_single_rows_only_is_discarded(
    base_manifest, training_data, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    X, y = training_data
    artifact = ModelArtifact(estimator=ESTIMATORS["logreg-sigmoid"](X, y), manifest=base_manifest)
    real = inference._compile_proba

    def wrong_on_one_row(estimator):
        score = real(estimator)
        return lambda X: np.full(1, 0.5) if len(X) == 1 else score(X)

    monkeypatch.setattr(inference, "_compile_proba", wrong_on_one_row)
    scorer = make_scorer(artifact)
    assert not scorer.is_compiled
    assert "differs from predict_proba" in caplog.text


def test_saved_model_compiles(trained_registry, base_manifest) -> None:
    artifact = load_model(trained_registry, base_manifest.model_id)
    assert make_scorer(artifact).is_compiled


def test_unknown_estimators_use_predict_proba(base_manifest, training_data) -> None:
    X, y = training_data
    artifact = ModelArtifact(estimator=GaussianNB().fit(X, y), manifest=base_manifest)
    scorer = make_scorer(artifact)
    rows = sample_rows(artifact, n_rows=50, seed=1)
    assert not scorer.is_compiled
    expected = predict_proba_features(
        artifact, pd.DataFrame(rows, columns=base_manifest.feature_names)
    )
    np.testing.assert_array_equal(scorer.score(rows), expected)


def test_a_compiled_path_that_disagrees_is_discarded(
    base_manifest, training_data, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    X, y = training_data
    artifact = ModelArtifact(estimator=ESTIMATORS["logreg-sigmoid"](X, y), manifest=base_manifest)
    monkeypatch.setattr(inference, "_compile_proba", lambda _est: lambda X: np.full(len(X), 0.5))
    scorer = make_scorer(artifact)
    assert not scorer.is_compiled
    assert "differs from predict_proba" in caplog.text
    rows = sample_rows(artifact, n_rows=20, seed=2)
    expected = predict_proba_features(
        artifact, pd.DataFrame(rows, columns=base_manifest.feature_names)
    )
    np.testing.assert_array_equal(scorer.score(rows), expected)


def test_sample_rows_cover_the_training_ranges(base_manifest) -> None:
    artifact = ModelArtifact(estimator=None, manifest=base_manifest)
    rows = sample_rows(artifact, n_rows=2000, seed=0)
    low, high = base_manifest.feature_ranges["rsi"]
    column = rows[:, base_manifest.feature_names.index("rsi")]
    assert column.min() < low and column.max() > high  # 10 % beyond each end
    assert np.isfinite(rows).all()
