"""Run independent tasks (walk-forward folds, sweeps) locally with joblib, in input order."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from joblib import Parallel, delayed

from core.errors import ConfigError
from core.settings import ComputeSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def map_tasks(
    func: Callable[[T], R],
    items: Sequence[T],
    compute: ComputeSettings,
    *,
    on_result: Callable[[R], None] | None = None,
) -> list[R]:
    """Apply `func` to every item and return the results in input order.

    `func` must be a picklable module-level function and the items picklable values, so that
    the same tasks can later run on another backend. `on_result` is called in this process
    for each result, in input order, as soon as it (and all before it) are done.

    >>> from core.settings import ComputeSettings
    >>> map_tasks(abs, [-2, 3, -1], ComputeSettings())
    [2, 3, 1]
    """
    if compute.backend != "local":
        raise ConfigError(
            f"compute.backend {compute.backend!r} is not available yet; set compute.backend: local"
        )
    if compute.n_jobs == 1 or len(items) <= 1:
        results_iter = (func(item) for item in items)
    else:
        logger.debug("Running %d tasks with joblib n_jobs=%d", len(items), compute.n_jobs)
        parallel = Parallel(n_jobs=compute.n_jobs, return_as="generator")
        results_iter = parallel(delayed(func)(item) for item in items)
    results: list[R] = []
    for result in results_iter:
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results
