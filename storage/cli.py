"""The `db` sub-command: `upgrade` runs the migrations, `info` shows tables and row counts."""

from __future__ import annotations

import logging

import typer
from sqlalchemy import Engine

from core.errors import ConfigError
from core.settings import Settings
from storage.db import (
    current_revision,
    head_revision,
    init_db,
    make_engine,
    safe_url,
    table_row_counts,
)

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="db",
    help="Manage the database at storage.db_url (schema migrations, contents).",
    no_args_is_help=True,
)


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    if not isinstance(settings, Settings):
        raise ConfigError(
            "The db commands need the settings loaded by the root command; "
            "run them as `cryptopred [--config FILE] db ...`"
        )
    return settings


def _engine(settings: Settings) -> Engine:
    return make_engine(settings.storage.db_url, busy_timeout_ms=settings.storage.busy_timeout_ms)


@app.command()
def upgrade(ctx: typer.Context) -> None:
    """Migrate the database to the latest schema (safe to run repeatedly)."""
    engine = _engine(_settings(ctx))
    try:
        before = current_revision(engine)
        init_db(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"{safe_url(engine.url)}: schema {before or 'empty'} -> {after}")


@app.command()
def info(ctx: typer.Context) -> None:
    """Show the schema revision and the row count of every table."""
    engine = _engine(_settings(ctx))
    try:
        revision = current_revision(engine)
        counts = table_row_counts(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if revision == head else "run `cryptopred db upgrade`"
    typer.echo(f"database  {safe_url(engine.url)}")
    typer.echo(f"revision  {revision or 'none'} (latest {head}: {state})")
    width = max((len(name) for name in counts), default=5)
    typer.echo(f"{'table':<{width}}  rows")
    for name, count in counts.items():
        typer.echo(f"{name:<{width}}  {count}")
