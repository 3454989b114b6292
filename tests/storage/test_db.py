"""Engine, sessions, error translation and Alembic migrations."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import StorageError
from storage.db import (
    alembic_config,
    check_connection,
    current_revision,
    describe_error,
    head_revision,
    init_db,
    make_engine,
    make_session_factory,
    safe_url,
    session_scope,
    table_row_counts,
)
from storage.models import Base
from storage.repository import (
    NewBacktestRun,
    add_backtest_run,
    insert_predictions,
    list_predictions,
)
from tests.storage.factories import make_new_prediction

TABLES = {
    "predictions",
    "bot_runs",
    "backtest_runs",
    "model_events",
    "paper_marks",
    "paper_orders",
    "alembic_version",
}


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_make_engine_sets_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}", busy_timeout_ms=1234)
    assert _pragma(engine, "journal_mode") == "wal"
    assert _pragma(engine, "busy_timeout") == 1234
    assert _pragma(engine, "synchronous") == 1  # NORMAL
    assert _pragma(engine, "foreign_keys") == 1
    engine.dispose()


def test_make_engine_creates_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "var" / "nested" / "c.db"
    engine = make_engine(f"sqlite:///{path}")
    check_connection(engine)
    assert path.is_file()
    engine.dispose()


def test_make_engine_memory_url_is_one_database_across_threads() -> None:
    engine = make_engine("sqlite://")
    init_db(engine)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        insert_predictions(session, [make_new_prediction(0)])
    counts: list[int] = []

    def _count() -> None:
        counts.append(table_row_counts(engine)["predictions"])

    thread = threading.Thread(target=_count)
    thread.start()
    thread.join()
    assert counts == [1]
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a database url", "Invalid database URL"),
        ("nosuchdb://host/db", "Cannot create an engine"),
        ("postgresql+nodriver://u:pw@host/db", "Cannot create an engine"),
    ],
)
def test_make_engine_bad_url_raises_storage_error(url: str, expected: str) -> None:
    with pytest.raises(StorageError, match=expected) as info:
        make_engine(url)
    assert "storage.db_url" in str(info.value) or "driver" in str(info.value)


def test_make_engine_unwritable_directory_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="Cannot create the directory") as info:
        make_engine(f"sqlite:///{blocker / 'sub' / 'x.db'}")
    assert str(blocker / "sub") in str(info.value)


def test_init_db_unopenable_file_raises_storage_error(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}")  # the "file" is a directory
    with pytest.raises(StorageError, match="schema upgrade failed") as info:
        init_db(engine)
    assert "unable to open database file" in str(info.value)


def test_check_connection_hides_password() -> None:
    engine = make_engine("postgresql+psycopg://bot:s3cret-pw@127.0.0.1:1/cryptopred")
    with pytest.raises(StorageError, match="connection check failed") as info:
        check_connection(engine)
    assert "s3cret-pw" not in str(info.value)
    assert "bot:***@127.0.0.1:1/cryptopred" in str(info.value)
    assert "that the server is running" in str(info.value)


def test_safe_url_masks_password_even_when_unparseable() -> None:
    assert safe_url("weird://user:pa:ss@host/x") == "weird://user:***@host/x"


def test_describe_error_names_operation_url_and_hint() -> None:
    error = OperationalError("INSERT ...", {}, Exception("database is locked"))
    url = sa.make_url("postgresql+psycopg://bot:s3cret@db/cp")
    message = describe_error("insert predictions", url, error)
    assert message.startswith("Database insert predictions failed on postgresql+psycopg://bot:***@")
    assert "database is locked" in message
    assert "busy_timeout_ms" in message
    assert "s3cret" not in message


def test_session_scope_commits_and_rolls_back(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        insert_predictions(session, [make_new_prediction(0)])
    with pytest.raises(RuntimeError), session_scope(factory) as session:
        insert_predictions(session, [make_new_prediction(1)])
        raise RuntimeError("boom")
    assert table_row_counts(factory.kw["bind"])["predictions"] == 1


def test_session_scope_translates_constraint_error(factory: sessionmaker[Session]) -> None:
    run = NewBacktestRun(
        run_id="r1",
        created_ms=1,
        config_hash="h",
        symbol="BTC/USDT",
        timeframe="1h",
        models=("logreg",),
        period_start_ms=0,
        period_end_ms=1,
        metrics={},
    )
    with session_scope(factory) as session:
        add_backtest_run(session, run)
    with (
        pytest.raises(StorageError, match="Database record backtest failed on") as info,
        session_scope(factory, operation="record backtest") as session,
    ):
        add_backtest_run(session, run)
    assert "constraint" in str(info.value)


def test_session_scope_missing_schema_says_upgrade(tmp_path: Path) -> None:
    factory = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    with (
        pytest.raises(StorageError, match="cryptopred db upgrade"),
        session_scope(factory, operation="insert predictions") as session,
    ):
        insert_predictions(session, [make_new_prediction(0)])


def test_write_transaction_takes_lock_at_begin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    holder = make_engine(url)
    init_db(holder)
    waiter = make_session_factory(make_engine(url, busy_timeout_ms=50))
    with session_scope(make_session_factory(holder)) as session:
        session.execute(sa.text("SELECT count(*) FROM predictions"))  # a read only...
        # ...but BEGIN IMMEDIATE already holds the write lock, so a second writer waits, then fails.
        with pytest.raises(StorageError, match="locked"), session_scope(waiter) as other:
            other.execute(sa.text("SELECT 1"))
        insert_predictions(session, [make_new_prediction(0)])
    assert table_row_counts(holder)["predictions"] == 1


def test_check_connection_does_not_wait_for_a_held_write_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.db'}"
    holder = make_engine(url)
    init_db(holder)
    prober = make_engine(url, busy_timeout_ms=5000)
    with session_scope(make_session_factory(holder)) as session:
        session.execute(sa.text("SELECT 1"))  # BEGIN IMMEDIATE: holds the write lock
        started = time.perf_counter()
        check_connection(prober, timeout_ms=100)
        assert time.perf_counter() - started < 1.0
    assert _pragma(prober, "busy_timeout") == 5000  # the pooled connection got its timeout back
    prober.dispose()
    holder.dispose()


def test_read_only_scope_is_deferred_and_would_hit_busy_snapshot(tmp_path: Path) -> None:
    # The hazard BEGIN IMMEDIATE prevents: a deferred read-then-write transaction whose
    # snapshot went stale fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT).
    url = f"sqlite:///{tmp_path / 'snap.db'}"
    engine = make_engine(url)
    init_db(engine)
    factory = make_session_factory(engine)
    with (
        pytest.raises(StorageError, match="locked"),
        session_scope(factory, read_only=True) as reader,
    ):
        reader.execute(sa.text("SELECT count(*) FROM predictions")).scalar()
        with session_scope(factory) as writer:  # not blocked by the deferred reader
            insert_predictions(writer, [make_new_prediction(0)])
        insert_predictions(reader, [make_new_prediction(1)])
    assert table_row_counts(engine)["predictions"] == 1


def test_init_db_creates_schema_at_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision() == "0003"
    assert set(table_row_counts(engine)) == TABLES


def test_init_db_twice_is_a_no_op(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        insert_predictions(session, [make_new_prediction(0)])
    before = table_row_counts(engine)
    init_db(engine)
    assert table_row_counts(engine) == before
    assert before["alembic_version"] == 1
    assert current_revision(engine) == "0003"


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_migrations_downgrade_and_upgrade_again(engine: Engine) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(table_row_counts(engine)) == {"alembic_version"}
    assert current_revision(engine) is None
    init_db(engine)
    assert set(table_row_counts(engine)) == TABLES


def _columns(engine: Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return {column["name"] for column in sa.inspect(conn).get_columns(table)}


def _migrate(engine: Engine, action: str, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


def test_migration_0002_adds_size_and_keeps_old_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    _migrate(engine, "upgrade", "0001")
    assert "size" not in _columns(engine, "predictions")
    with engine.begin() as conn:  # a row logged by the old schema
        values = {
            key: value
            for key, value in dataclasses.asdict(make_new_prediction(0)).items()
            if key not in ("size", "policy_source")
        }
        conn.execute(sa.insert(sa.table("predictions", *map(sa.column, values))), [values])
    init_db(engine)
    assert current_revision(engine) == head_revision()
    assert {"size", "policy_source"} <= _columns(engine, "predictions")
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        insert_predictions(
            session, [make_new_prediction(1, signal=1, size=0.4, policy_source="manifest")]
        )
        (new, old) = list_predictions(session, limit=10).items
    assert (old.size, old.policy_source, old.signal) == (None, None, 1)
    assert (new.size, new.policy_source) == (0.4, "manifest")
    _migrate(engine, "downgrade", "0001")
    assert current_revision(engine) == "0001"
    assert "size" not in _columns(engine, "predictions")
    assert "policy_source" not in _columns(engine, "predictions")
    assert table_row_counts(engine)["predictions"] == 2
    init_db(engine)
    assert {"size", "policy_source"} <= _columns(engine, "predictions")
    engine.dispose()
