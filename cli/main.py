"""The `cryptopred` Typer app: loads settings once and assembles each package's sub-commands."""

from __future__ import annotations

import logging
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from api.cli import serve_command
from backtests.cli import backtest_command
from backtests.report_cli import app as report_app
from bot.cli import live_command
from core.errors import AppError
from core.logging import setup_logging
from core.settings import load_settings
from data.cli import app as data_app
from ml.cli import make_train_command, models_app
from serving.cli import promote_command, promote_from_cli
from storage.cli import app as db_app

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("config.yaml")


class _Group(TyperGroup):
    """Root command group that turns expected failures (`AppError`) into one line and exit 2."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click; its Context type is private
        if not sys.stdout.isatty():  # rich would wrap tables at 80 columns in pipes and logs
            os.environ.setdefault("COLUMNS", "160")
        try:
            return super().invoke(ctx)
        except AppError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e


app = typer.Typer(
    cls=_Group,
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


app.add_typer(data_app, name="data")
app.command("train")(make_train_command(promoter=promote_from_cli))
app.command("backtest")(backtest_command)
models_app.command("promote")(promote_command)
app.add_typer(report_app, name="report")
app.add_typer(models_app, name="models")
app.add_typer(db_app, name="db")
app.command("serve")(serve_command)
app.command("live")(live_command)


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(metadata.version("crypto-predictor"))


if __name__ == "__main__":
    app()
