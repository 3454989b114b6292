"""Real processes for the bot's end-to-end tests: the replaying emulator, `cryptopred live` and
`cryptopred serve`, and read-only queries of the database they share (SQLite file or URL)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[2]
HOUR_MS = 3_600_000
REPLAY_COSTS = {"fee_rate": 0.001, "slippage_bps": 5.0, "position_fraction": 0.95}
"""The bots' (and so their paper accounts') trading costs."""


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    """Poll `condition` until it holds; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Emulator:
    """`python -m tests.emulator` in replay mode on a candle file."""

    data: Path
    replay_start: str
    workdir: Path
    seconds_per_candle: float
    fault_rate: float = 0.0
    seed: int = 1
    url: str = ""
    process: subprocess.Popen[str] | None = None

    def start(self) -> Emulator:
        args = [
            sys.executable,
            "-m",
            "tests.emulator",
            "--data",
            str(self.data),
            "--replay-start",
            self.replay_start,
            "--seconds-per-candle",
            str(self.seconds_per_candle),
            "--fault-rate",
            str(self.fault_rate),
            "--seed",
            str(self.seed),
        ]
        stderr = (self.workdir / "emulator.err").open("w")
        self.process = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the server listens
        assert line.startswith("EMULATOR_URL "), f"emulator did not start: {line!r}"
        self.url = line.split()[1]
        return self

    def server_ms(self) -> int:
        with urllib.request.urlopen(f"{self.url}/api/v3/time", timeout=5) as reply:  # noqa: S310
            return int(json.loads(reply.read())["serverTime"])

    def last_closed_open_ms(self) -> int:
        return self.server_ms() // HOUR_MS * HOUR_MS - HOUR_MS

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def write_bot_config(
    workdir: Path,
    *,
    base_url: str,
    registry: Path,
    db_url: str | None = None,
    name: str = "config",
    **bot: Any,
) -> Path:
    """`<name>.yaml` for `cryptopred live` against the emulator; `workdir/bot.db` by default."""
    config = {
        "exchange": {
            "base_url": base_url,
            "timeout_ms": 1000,  # the emulator's "slow" fault answers after 2 s
            "retry": {"max_attempts": 6, "backoff_seconds": 0.05, "max_backoff_seconds": 2.0},
        },
        "ml": {"registry_dir": str(registry)},
        "strategy": dict(REPLAY_COSTS),
        "bot": {"clock": "exchange", "poll_seconds": 0.1, "max_backfill_bars": 100, **bot},
        "storage": {"db_url": db_url or f"sqlite:///{workdir / 'bot.db'}"},
        "data": {"cache_dir": str(workdir / f"cache-{name}")},
        "logging": {"level": "INFO"},
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def cryptopred_command() -> list[str]:
    """The installed console script, as a user runs it (or the module when not installed)."""
    script = Path(sys.executable).with_name("cryptopred")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


@dataclass
class LiveBot:
    """`cryptopred live` as a subprocess, logging to a file."""

    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    stop_seconds: float | None = None
    logs: list[str] = field(default_factory=list)

    def start(self) -> LiveBot:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [*cryptopred_command(), "--config", str(self.config), "live"],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return self

    def terminate(self, *, timeout: float = 15.0) -> int:
        """SIGTERM; returns the exit code and records how long the exit took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self.stop_seconds = time.monotonic() - started
        return code

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """`cryptopred serve` as a subprocess on a free 127.0.0.1 port, logging to a file."""

    config: Path
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.port = free_port()
        handle = self.log.open("ab")
        command = [*cryptopred_command(), "--config", str(self.config), "serve"]
        self.process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return self

    def get_json(self, path: str) -> tuple[int, Any]:
        """(status, decoded body) of a GET; (0, None) while the server is not listening."""
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as reply:  # noqa: S310
                return int(reply.status), json.loads(reply.read())
        except urllib.error.HTTPError as e:
            return int(e.code), json.loads(e.read())
        except (ConnectionError, urllib.error.URLError):
            return 0, None

    def terminate(self, *, timeout: float = 15.0) -> int:
        """SIGTERM; uvicorn shuts down gracefully, then re-raises the signal (-15)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


Database = Path | str
"""A SQLite file, or a SQLAlchemy URL (a `sqlite:///` file or a PostgreSQL schema)."""


def query(db: Database, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query, or [] while the schema does not exist yet."""
    if isinstance(db, str):
        url = sa.make_url(db)
        if url.get_backend_name() != "sqlite":
            return _query_server(url, sql)
        db = Path(url.database or "")
    if not db.exists():
        return []
    # read-only URI: never creates the file, and is fine next to a WAL writer
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # schema not created yet
            return []


def _query_server(url: sa.URL, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    except sa.exc.ProgrammingError:  # schema not created yet (undefined table)
        return []
    finally:
        engine.dispose()


def prediction_count(db: Database) -> int:
    rows = query(db, "SELECT count(*) FROM predictions")
    return int(rows[0][0]) if rows else 0


def newest_prediction_ms(db: Database) -> int:
    rows = query(db, "SELECT max(candle_open_ms) FROM predictions")
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0
