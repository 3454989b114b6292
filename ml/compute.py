"""Run independent tasks (walk-forward folds, sweeps) locally with joblib or on a Dask cluster."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from joblib import Parallel, delayed

from core.errors import ConfigError
from core.settings import ComputeSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")
K = TypeVar("K", bound=Hashable)

LOCAL_CLUSTER = "local-cluster"
CONNECT_TIMEOUT = "10s"


def map_tasks(
    func: Callable[[T], R],
    items: Sequence[T],
    compute: ComputeSettings,
    *,
    on_result: Callable[[R], None] | None = None,
) -> list[R]:
    """Apply `func` to every item and return the results in input order.

    `func` must be a picklable module-level function and the items picklable values, so the
    same tasks run on any backend with identical results. `on_result` is called in this
    process for each result, in input order, as soon as it (and all before it) are done.
    The Dask backend reuses the client opened by `dask_client` (or opens one for this call).

    >>> from core.settings import ComputeSettings
    >>> map_tasks(abs, [-2, 3, -1], ComputeSettings())
    [2, 3, 1]
    """
    if compute.backend == "dask" and len(items) > 0:
        with dask_client(compute) as client:
            return _collect(_dask_results(client, func, [list(items)]), on_result)
    return _collect(_local_results(func, [items], compute), on_result)


def map_shared(
    func: Callable[[S, T], R],
    shared: S,
    items: Sequence[T],
    compute: ComputeSettings,
    *,
    on_result: Callable[[R], None] | None = None,
) -> list[R]:
    """`map_tasks` for tasks that all read one large value: returns `[func(shared, item), ...]`.

    The items stay small (positions, settings) and `shared` is sent once, not once per task:
    the Dask backend scatters it to every worker (`client.scatter(..., broadcast=True)`) and
    the tasks carry its future; joblib's worker processes receive it with each batch, its
    numpy arrays above 1 MB memory-mapped once to a temporary file (joblib's `max_nbytes`)
    rather than copied per task. Sequentially it is simply the same object for every call.

    >>> from core.settings import ComputeSettings
    >>> map_shared(pow, 2, [1, 3], ComputeSettings())
    [2, 8]
    """
    keyed = [(0, item) for item in items]
    return map_keyed(func, {0: shared}, keyed, compute, on_result=on_result, broadcast=True)


def map_keyed(
    func: Callable[[S, T], R],
    shared: Mapping[K, S],
    items: Sequence[tuple[K, T]],
    compute: ComputeSettings,
    *,
    on_result: Callable[[R], None] | None = None,
    broadcast: bool = False,
) -> list[R]:
    """`[func(shared[key], item) for key, item in items]`, each shared value sent once.

    For tasks that read one of a few large values (a sweep: each symbol's candles, read by
    every model's task). The Dask backend scatters each value once, to one worker (every
    worker with `broadcast`), and the tasks carry its future: a worker that needs a value it
    lacks fetches it from a peer once. Locally the values are passed as they are.

    >>> from core.settings import ComputeSettings
    >>> map_keyed(pow, {"a": 2, "b": 3}, [("a", 1), ("b", 2), ("a", 3)], ComputeSettings())
    [2, 9, 8]
    """
    if compute.backend == "dask" and len(items) > 0:
        with dask_client(compute) as client:
            keys = list(dict.fromkeys(key for key, _ in items))
            futures = client.scatter([shared[key] for key in keys], broadcast=broadcast, hash=False)
            by_key = dict(zip(keys, futures, strict=True))
            try:
                columns = [[by_key[key] for key, _ in items], [item for _, item in items]]
                return _collect(_dask_results(client, func, columns), on_result)
            finally:
                client.cancel(futures)
    columns = [[shared[key] for key, _ in items], [item for _, item in items]]
    return _collect(_local_results(func, columns, compute), on_result)


def _local_results(
    func: Callable[..., R], columns: Sequence[Sequence[Any]], compute: ComputeSettings
) -> Iterator[R]:
    """`func(*args)` for each row of `columns`, in order: sequential or joblib workers."""
    n_items = len(columns[-1])
    calls = zip(*columns, strict=True)
    if compute.n_jobs == 1 or n_items <= 1:
        return (func(*args) for args in calls)
    logger.debug("Running %d tasks with joblib n_jobs=%d", n_items, compute.n_jobs)
    parallel = Parallel(n_jobs=compute.n_jobs, return_as="generator")
    return iter(parallel(delayed(func)(*args) for args in calls))


def _collect(results: Iterable[R], on_result: Callable[[R], None] | None) -> list[R]:
    out: list[R] = []
    for result in results:
        if on_result is not None:
            on_result(result)
        out.append(result)
    return out


def _dask_results(client: Any, func: Callable[..., R], columns: Sequence[list[Any]]) -> Iterator[R]:
    futures = client.map(func, *columns, pure=False)
    try:
        for future in futures:
            yield future.result()
    finally:
        client.cancel(futures)


@contextmanager
def dask_client(compute: ComputeSettings) -> Iterator[Any]:
    """A Dask client for `compute`, reused when one is already open in this process.

    `scheduler_address: local-cluster` starts a `LocalCluster` bound to 127.0.0.1 with its
    dashboard off (NOTES.md: the default binds 0.0.0.0:8787), worker processes with one
    thread each (`compute.n_jobs` workers, at least 1).
    """
    try:
        from distributed import Client, LocalCluster, default_client
    except ImportError as e:  # optional at run time; installed with the project
        raise ConfigError("compute.backend 'dask' needs the `distributed` package") from e
    try:
        yield default_client()
        return
    except ValueError:
        pass  # no client open yet: open one for the duration of the block
    address = compute.scheduler_address or LOCAL_CLUSTER
    if address == LOCAL_CLUSTER:
        workers = max(1, compute.n_jobs)
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        logger.info("Started a local Dask cluster with %d workers", workers)
        with cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as e:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} ({e}); check compute.scheduler_address"
        ) from e
    with client:
        yield client
