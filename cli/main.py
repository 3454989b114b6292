"""The `cryptopred` Typer app: loads settings once and assembles each package's sub-commands."""

from __future__ import annotations

import logging
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import AppError
from core.logging import setup_logging
from core.settings import load_settings

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("config.yaml")


class _App(typer.Typer):
    """Typer app that turns expected failures (`AppError`) into one line and exit code 2."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except AppError as e:
            typer.echo(f"error: {e}", err=True)
            sys.exit(2)


app = _App(
    name="cryptopred",
    help="Predict crypto candle direction with walk-forward ML; backtest, run live, serve.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="Path to config.yaml (defaults apply if it is absent)."
        ),
    ] = DEFAULT_CONFIG,
) -> None:
    """Load the settings once; every sub-command receives them through the context."""
    explicit = config != DEFAULT_CONFIG or config.exists()
    settings = load_settings(config if explicit else None)
    setup_logging(settings.logging)
    if not explicit:
        logger.info("No %s here; using built-in defaults", config)
    ctx.obj = settings


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(metadata.version("crypto-predictor"))


if __name__ == "__main__":
    app()
