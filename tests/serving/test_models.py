"""serving.models.ModelCache: cached models, reload on promotion, unknown vs untrained pairs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.errors import FeatureMismatchError, ModelNotFoundError
from ml.registry import promote_model
from serving.models import ModelCache, NoModelYetError, check_feature_names
from tests.api.conftest import api_settings, install_model

PAIRS = frozenset({("BTC/USDT", "1h")})


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry(tmp_path, trained_registry):
    settings = api_settings(tmp_path)
    manifest = install_model(trained_registry, settings)
    root = settings.ml.registry_dir
    shutil.copytree(root / manifest.model_id, root / "second-model")
    path = root / "second-model" / "manifest.json"
    path.write_text(
        json.dumps({**json.loads(path.read_text(encoding="utf-8")), "model_id": "second-model"}),
        encoding="utf-8",
    )
    return root, manifest


def test_store_caches_then_follows_the_pointer(registry) -> None:
    root, manifest = registry
    clock = FakeClock()
    store = ModelCache(
        root, compile_scorer=True, known_pairs=PAIRS, recheck_seconds=1.0, clock=clock
    )
    first = store.current("BTC/USDT", "1h")
    assert first.manifest.model_id == manifest.model_id
    promote_model(root, "second-model")
    clock.now = 0.5
    assert store.current("BTC/USDT", "1h") is first  # within the recheck window: no disk read
    clock.now = 1.5
    assert store.current("BTC/USDT", "1h").manifest.model_id == "second-model"
    clock.now = 3.0
    again = store.current("BTC/USDT", "1h")
    clock.now = 4.5
    assert store.current("BTC/USDT", "1h") is again  # same pointer: no reload


def test_store_forget_reloads_at_once(registry) -> None:
    root, _manifest = registry
    store = ModelCache(root, compile_scorer=True, known_pairs=PAIRS, clock=FakeClock())
    store.current("BTC/USDT", "1h")
    promote_model(root, "second-model")
    store.forget("BTC/USDT", "1h")
    assert store.current("BTC/USDT", "1h").manifest.model_id == "second-model"


def test_store_tells_not_trained_from_unknown(tmp_path) -> None:
    store = ModelCache(tmp_path / "models", known_pairs=PAIRS)
    with pytest.raises(NoModelYetError, match="cryptopred train --symbol BTC/USDT --timeframe 1h"):
        store.current("BTC/USDT", "1h")
    with pytest.raises(ModelNotFoundError, match="unknown symbol/timeframe ETH/USDT 4h") as info:
        store.current("ETH/USDT", "4h")
    assert not isinstance(info.value, NoModelYetError)
    assert store.current_or_none("BTC/USDT", "1h") is None
    store.check_known("BTC/USDT", "1h")
    with pytest.raises(ModelNotFoundError):
        store.check_known("ETH/USDT", "4h")


def test_loaded_model_builds_rows_in_model_order(registry) -> None:
    root, manifest = registry
    model = ModelCache(root, compile_scorer=True, known_pairs=PAIRS).current("BTC/USDT", "1h")
    values = {name: float(i) for i, name in enumerate(manifest.feature_names)}
    shuffled = dict(reversed(list(values.items())))
    row = model.row_from_mapping(shuffled)
    np.testing.assert_array_equal(row, [list(range(len(manifest.feature_names)))])
    with pytest.raises(FeatureMismatchError, match=r"missing \['rsi'\]; unknown \['zzz'\]"):
        check_feature_names(model, [n for n in manifest.feature_names if n != "rsi"] + ["zzz"])
