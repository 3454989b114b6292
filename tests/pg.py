"""Throw-away PostgreSQL schemas for the suites that run on SQLite and PostgreSQL (storage, bot).

`.ci/run` starts a PostgreSQL server and exports CRYPTOPRED_TEST_PG_URL; without it the
PostgreSQL variants are skipped. Each test gets its own schema, selected for every connection
of the URL through libpq's `options=-csearch_path=<schema>`, so subprocesses given the URL (a
`cryptopred live` config) see the same isolated, initially empty database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from storage.db import _PG_MIGRATION_LOCK
from tests.prerequisites import require_or_skip

# The key `init_db` serialises migrations with (private there; the tests check it is used).
MIGRATION_LOCK = _PG_MIGRATION_LOCK
PG_URL_ENV = "CRYPTOPRED_TEST_PG_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""Parameters of a `db_url`-style fixture: SQLite always, PostgreSQL when configured."""


def pg_base_url() -> str:
    """The server URL from the environment; skips the test (fails under CI) when it is unset."""
    url = os.environ.get(PG_URL_ENV)
    if not url:
        require_or_skip(f"{PG_URL_ENV} is not set (.ci/run sets it after starting PostgreSQL)")
    return url


@contextmanager
def pg_schema_url(base_url: str | None = None) -> Iterator[str]:
    """A URL whose connections all live in a fresh, empty schema, dropped on exit."""
    base = base_url or pg_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database_url(backend: str, *, sqlite_path: Path) -> Iterator[str]:
    """A fresh, empty database for a `BACKENDS` value: the SQLite file, or a PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{sqlite_path}"
        return
    with pg_schema_url() as url:
        yield url


def with_application_name(url: str, name: str) -> str:
    """`url` whose PostgreSQL sessions show `name` in pg_stat_activity (to tell processes apart)."""
    return (
        sa.make_url(url)
        .update_query_dict({"application_name": name})
        .render_as_string(hide_password=False)
    )


class HeldMigrationLock:
    """Holds `storage.db.init_db`'s advisory lock on PostgreSQL until `release`.

    Processes started meanwhile block in `init_db`; `waiting()` names them (by application name),
    so a test can release them all at the same moment and watch them race for the migration.
    """

    def __init__(self, url: str) -> None:
        self._engine = sa.create_engine(url, poolclass=NullPool)
        self._conn = self._engine.connect()
        self._conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})

    def waiting(self) -> list[str]:
        """Application names of the sessions waiting for the lock."""
        # pg_locks splits a bigint advisory key into classid (high) and objid (low 32 bits).
        # A fresh transaction each time: pg_stat_activity is a snapshot per transaction.
        key = {"high": MIGRATION_LOCK >> 32, "low": MIGRATION_LOCK & 0xFFFFFFFF}
        with self._engine.connect() as conn:
            rows = conn.execute(_WAITERS_SQL, key).all()
        return sorted(str(name) for (name,) in rows)

    def release(self) -> None:
        """End the transaction holding the lock (idempotent)."""
        if not self._conn.closed:
            self._conn.rollback()
            self._conn.close()
        self._engine.dispose()


_WAITERS_SQL = sa.text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 1 "
    "AND l.classid = :high AND l.objid = :low"
)
