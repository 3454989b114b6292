"""The Dask backend gives exactly the local backend's results (same seeds)."""

import operator

import numpy as np
import pandas as pd
import pytest

from core.settings import ComputeSettings
from ml.compute import dask_client, map_keyed, map_tasks
from ml.dataset import make_dataset
from ml.walk_forward import run_walk_forward
from tests.factories import make_ohlcv, make_settings

LOCAL_CLUSTER = ComputeSettings(backend="dask", scheduler_address="local-cluster", n_jobs=2)


def _total_plus(values: np.ndarray, extra: int) -> float:
    return float(values.sum()) + extra


def test_map_keyed_gives_each_item_its_shared_value_in_order() -> None:
    shared = {"a": np.ones(3), "b": np.ones(5)}
    items = [("b", 1), ("a", 2), ("b", 0), ("a", 0)]
    for compute in (ComputeSettings(), ComputeSettings(n_jobs=2)):
        seen: list[float] = []
        out = map_keyed(_total_plus, shared, items, compute, on_result=seen.append)
        assert out == seen == [6.0, 5.0, 5.0, 3.0]


@pytest.mark.slow
def test_map_keyed_dask_scatters_each_shared_value_once(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = {key: np.full(500_000, float(i)) for i, key in enumerate("ab")}  # 4 MB each
    items = [(key, j) for key in "ab" for j in range(3)]
    with dask_client(LOCAL_CLUSTER) as client:
        scattered: list[list[object]] = []
        real_scatter = client.scatter

        def scatter(data: list[object], **options: object) -> object:
            scattered.append(data)
            return real_scatter(data, **options)

        monkeypatch.setattr(client, "scatter", scatter)
        out = map_keyed(_total_plus, shared, items, LOCAL_CLUSTER)
    assert out == [0.0, 1.0, 2.0, 500_000.0, 500_001.0, 500_002.0]
    assert len(scattered) == 1 and len(scattered[0]) == 2  # one value per key, once


@pytest.mark.slow
def test_map_tasks_dask_local_cluster_keeps_order_and_reuses_client() -> None:
    seen: list[int] = []
    with dask_client(LOCAL_CLUSTER) as client:
        first = map_tasks(operator.neg, [3, 1, 2], LOCAL_CLUSTER, on_result=seen.append)
        with dask_client(LOCAL_CLUSTER) as again:
            assert again is client  # nested use reuses the open client, no second cluster
        assert len(client.scheduler_info()["workers"]) == 2
        for worker in client.scheduler_info()["workers"]:
            assert worker.startswith("tcp://127.0.0.1:")
    assert first == seen == [-3, -1, -2]


@pytest.mark.slow
def test_walk_forward_dask_equals_local() -> None:
    settings = make_settings(
        None,
        ml={"walk_forward": {"train_bars": 600, "validation_bars": 150, "step_bars": 300}},
    )
    dataset = make_dataset(make_ohlcv(2200, seed=5), settings.ml)
    local = run_walk_forward(dataset, settings.ml, algorithm="lightgbm", compute=ComputeSettings())
    remote = run_walk_forward(dataset, settings.ml, algorithm="lightgbm", compute=LOCAL_CLUSTER)
    assert len(local.folds) >= 3
    pd.testing.assert_frame_equal(local.predictions, remote.predictions)
    assert local.metrics == remote.metrics
    np.testing.assert_array_equal(local.importances.to_numpy(), remote.importances.to_numpy())
