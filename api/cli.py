"""The `serve` command: uvicorn running `api.app:create_app` as a factory."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from api.app import CONFIG_ENV
from core.settings import Settings, require_settings
from storage.db import init_db, make_engine

logger = logging.getLogger(__name__)


def serve_command(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address [default: api.host]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: api.port]")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes [default: api.workers]")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log one line per request")] = True,
) -> None:
    """Serve the REST API and the dashboard (http://HOST:PORT/, docs at /docs)."""
    settings = require_settings(ctx.obj)
    prepare_database(settings)
    config = ctx.find_root().params.get("config")
    if isinstance(config, Path) and config.is_file():
        # every worker builds its app through the factory, which reads this variable
        os.environ[CONFIG_ENV] = str(config.resolve())
    bind_host = host or settings.api.host
    bind_port = port or settings.api.port
    logger.info("Serving on http://%s:%d (docs at /docs)", bind_host, bind_port)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers or settings.api.workers,
        access_log=access_log,
        log_config=None,
        proxy_headers=False,
    )


def prepare_database(settings: Settings) -> None:
    """Migrate the schema before uvicorn starts (each app's start-up then finds it at head).

    A locked, unreachable or unwritable database then fails here as one `error:` line and
    exit code 2, not as uvicorn's start-up traceback and exit code 3.

    Raises:
        StorageError: the database cannot be opened or migrated.
    """
    engine = make_engine(settings.storage.db_url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        init_db(engine)
    finally:
        engine.dispose()
