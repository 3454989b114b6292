"""Engine (SQLite WAL / PostgreSQL), sessions, error translation and Alembic `init_db`."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event, func, inspect, select, table, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from core.errors import StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: fall back to BEGIN IMMEDIATE alone
    fcntl = None  # type: ignore[assignment]

MIGRATION_LOCK_TIMEOUT_S = 120.0

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
READ_ONLY_OPTION = "cryptopred_read_only"
"""Execution option that makes a SQLite transaction start with a plain (deferred) BEGIN."""

# Serialises concurrent `init_db` calls on PostgreSQL (any constant bigint works).
_PG_MIGRATION_LOCK = 7_342_611_905
_PASSWORD_RE = re.compile(r"(://[^:/@]*:)[^@]*@")


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for messages and logs.

    >>> safe_url("postgresql+psycopg://bot:s3cret@db.local/cryptopred")
    'postgresql+psycopg://bot:***@db.local/cryptopred'
    """
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD_RE.sub(r"\1***@", url)


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE` transactions.

    A file database's parent directory is created. In-memory `sqlite://` shares one connection
    (StaticPool) so every session and thread sees the same database. Other URLs (PostgreSQL)
    are passed to SQLAlchemy unchanged.

    Raises:
        StorageError: the URL cannot be parsed, names an unknown driver, or the directory of
            the database file cannot be created.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StorageError(
            f"Invalid database URL {safe_url(url)!r}: {e}; use e.g. sqlite:///var/cryptopred.db "
            "or postgresql+psycopg://user:password@host/db (storage.db_url)"
        ) from e
    try:
        if parsed.get_backend_name() == "sqlite":
            return _make_sqlite_engine(parsed, busy_timeout_ms=busy_timeout_ms)
        return create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ArgumentError) as e:
        raise StorageError(
            f"Cannot create an engine for {safe_url(parsed)}: {e}; check the driver name "
            "(sqlite:///path or postgresql+psycopg://...) and that the driver is installed"
        ) from e


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _make_sqlite_engine(url: URL, *, busy_timeout_ms: int) -> Engine:
    memory = _is_memory(url)
    connect_args: dict[str, Any] = {"timeout": busy_timeout_ms / 1000}
    if memory:
        connect_args["check_same_thread"] = False
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        _ensure_parent_dir(url)
        engine = create_engine(url, connect_args=connect_args)
    _install_sqlite_hooks(engine, busy_timeout_ms=busy_timeout_ms, wal=not memory)
    return engine


def _ensure_parent_dir(url: URL) -> None:
    database = url.database or ""
    if database.startswith("file:"):  # URI filenames are left to SQLite
        return
    parent = Path(database).expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(
            f"Cannot create the directory {parent} for the SQLite database {safe_url(url)}: "
            f"{e}; choose a writable path in storage.db_url"
        ) from e


def _install_sqlite_hooks(engine: Engine, *, busy_timeout_ms: int, wal: bool) -> None:
    """Pragmas per connection and explicit BEGINs (recipe verified in NOTES.md section c)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level: pysqlite would otherwise BEGIN lazily before the
        # first write only, and our own BEGIN below could not choose IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front (waiting up to busy_timeout), so a
        # read-then-write transaction can never fail with SQLITE_BUSY_SNAPSHOT.
        read_only = bool(conn.get_execution_options().get(READ_ONLY_OPTION))
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


SessionFactory = sessionmaker[Session]
"""The type `make_session_factory` returns, for layers that may not import sqlalchemy."""
DbSession = Session
"""A database session, for layers that may not import sqlalchemy."""


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to `engine`; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(
    factory: sessionmaker[Session], *, operation: str = "transaction", read_only: bool = False
) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error.

    `read_only=True` starts a deferred SQLite transaction (a consistent snapshot that does not
    block writers); do not write in it.

    Raises:
        StorageError: any SQLAlchemy error, naming `operation` and the URL (password masked).
    """
    session = factory()
    try:
        if read_only:
            session.connection(execution_options={READ_ONLY_OPTION: True})
        yield session
        session.commit()
    except SQLAlchemyError as e:
        session.rollback()
        raise StorageError(describe_error(operation, session.get_bind().engine.url, e)) from e
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


_HINTS = (
    (
        ("locked", "busy"),
        "another connection held the write lock longer than busy_timeout_ms (or a read-only "
        "transaction tried to write); retry, or raise storage.busy_timeout_ms",
    ),
    (
        ("connection refused", "could not connect", "authentication failed", "timeout expired"),
        "check host, port, user and password in storage.db_url and that the server is running",
    ),
    (
        ("no such table", "no such column", "relation", "undefinedcolumn"),
        "the schema is missing or old; run `cryptopred db upgrade`",
    ),
    (
        ("unique", "constraint", "duplicate"),
        "a row breaks a constraint of the schema; fix the data being written",
    ),
)


def describe_error(operation: str, url: URL, error: SQLAlchemyError) -> str:
    """A one-line message: what failed, on which database, why, and a hint to fix it."""
    raw = str(error.orig) if isinstance(error, DBAPIError) else str(error).split("\n")[0]
    detail = " ".join(raw.split())  # PostgreSQL adds DETAIL/HINT lines; keep one line
    lowered = detail.lower()
    hint = next(
        (text for needles, text in _HINTS if any(needle in lowered for needle in needles)),
        "check the URL, disk space and permissions (storage.db_url), then retry",
    )
    return f"Database {operation} failed on {safe_url(url)}: {detail}; {hint}"


def check_connection(engine: Engine, *, timeout_ms: int | None = None) -> None:
    """Run `SELECT 1` in a read-only (deferred) transaction, as a health probe.

    The probe never takes the SQLite write lock, so a writer holding it does not delay it;
    `timeout_ms` caps how long this probe alone waits on any other lock (SQLite busy_timeout).

    Raises:
        StorageError: the database cannot be reached or opened.
    """
    try:
        with engine.connect() as conn:
            conn.execution_options(**{READ_ONLY_OPTION: True})
            with _probe_busy_timeout(conn, timeout_ms):
                conn.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        raise StorageError(describe_error("connection check", engine.url, e)) from e


@contextmanager
def _probe_busy_timeout(conn: Connection, timeout_ms: int | None) -> Iterator[None]:
    """Lower SQLite's busy_timeout on this pooled connection, and restore it afterwards."""
    if timeout_ms is None or conn.dialect.name != "sqlite":
        yield
        return
    previous = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())
    conn.exec_driver_sql(f"PRAGMA busy_timeout={int(timeout_ms)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={previous}")


def alembic_config() -> Config:
    """A programmatic Alembic config pointing at the packaged migrations (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def init_db(engine: Engine) -> None:
    """Upgrade the schema to the latest Alembic revision; idempotent and safe to race.

    The whole upgrade runs in one transaction that first takes the write lock (SQLite
    `BEGIN IMMEDIATE`, PostgreSQL advisory lock), so a second process starting at the same
    time waits and then finds the schema already at head.

    Raises:
        StorageError: the database cannot be opened or migrated, or it carries a revision
            this version of the code does not know.
    """
    config = alembic_config()
    try:
        with _sqlite_migration_lock(engine.url), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError as e:
        raise StorageError(describe_error("schema upgrade", engine.url, e)) from e
    except CommandError as e:
        raise StorageError(
            f"Database schema upgrade failed on {safe_url(engine.url)}: {e}; the database may "
            "come from a newer cryptopred version, upgrade the package or use another db_url"
        ) from e
    logger.info("Database %s is at schema revision %s", safe_url(engine.url), head_revision())


@contextmanager
def _sqlite_migration_lock(url: URL) -> Iterator[None]:
    """Serialise schema upgrades of one SQLite file across processes with a lock file.

    `BEGIN IMMEDIATE` alone makes a second process wait only `busy_timeout_ms`; on a loaded
    machine a first migration (WAL switch, DDL) can take longer, and the second start would
    fail with "database is locked". The lock file has no such limit short of
    `MIGRATION_LOCK_TIMEOUT_S`. Other dialects and in-memory databases need no file lock.
    """
    if url.get_backend_name() != "sqlite" or _is_memory(url) or fcntl is None:
        yield
        return
    database = Path(str(url.database))
    lock_path = database.with_name(database.name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        deadline = time.monotonic() + MIGRATION_LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"another process has been migrating {database} for over "
                        f"{MIGRATION_LOCK_TIMEOUT_S:.0f} s; check for a stuck cryptopred process"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def head_revision() -> str:
    """The newest migration revision shipped with the code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StorageError(
            f"No Alembic migrations found in {MIGRATIONS_DIR}; reinstall the package"
        )
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated.

    Raises:
        StorageError: the database cannot be reached.
    """
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as e:
        raise StorageError(describe_error("revision lookup", engine.url, e)) from e


def table_row_counts(engine: Engine) -> dict[str, int]:
    """Row count of every table in the database, by table name.

    Raises:
        StorageError: the database cannot be reached.
    """
    try:
        with engine.connect() as conn:
            names = sorted(inspect(conn).get_table_names())
            return {
                name: int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())
                for name in names
            }
    except SQLAlchemyError as e:
        raise StorageError(describe_error("table listing", engine.url, e)) from e
