"""Two processes on one database at once: no lock errors, no duplicate predictions."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import pytest

from storage.db import current_revision, init_db, make_engine, table_row_counts
from tests.storage import workers

TIMEOUT_S = 60


def _run_two(target: Callable[..., None], *args: Any) -> list[Any]:
    context = multiprocessing.get_context("spawn")
    gate, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=target, args=(*args[index], gate, results)) for index in range(2)
    ]
    for process in processes:
        process.start()
    gate.set()  # both children start their work at the same moment
    outcomes = [results.get(timeout=TIMEOUT_S) for _ in processes]
    for process in processes:
        process.join(TIMEOUT_S)
        assert process.exitcode == 0
    return outcomes


@pytest.mark.slow
def test_two_processes_insert_overlapping_predictions(db_url: str) -> None:
    engine = make_engine(db_url)
    init_db(engine)
    # Process A logs candles 0..299, B logs 150..449: 150 candles are written by both.
    outcomes = _run_two(workers.write_predictions, (db_url, 0, 300), (db_url, 150, 300))
    errors = [error for _, process_errors in outcomes for error in process_errors]
    assert errors == []
    assert sum(new for new, _ in outcomes) == 450
    assert table_row_counts(engine)["predictions"] == 450
    engine.dispose()


@pytest.mark.slow
def test_two_processes_init_db_at_once(db_url: str) -> None:
    outcomes = _run_two(workers.migrate, (db_url,), (db_url,))
    assert outcomes == [None, None]
    engine = make_engine(db_url)
    assert current_revision(engine) == "0003"
    assert table_row_counts(engine)["alembic_version"] == 1
    engine.dispose()
