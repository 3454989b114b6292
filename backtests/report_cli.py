"""The `cryptopred report` commands: pages built from runs already recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backtests.compare import load_compared_runs
from backtests.compare_report import write_compare_page
from core.settings import require_settings

app = typer.Typer(
    name="report",
    help="Pages built from recorded backtest runs (see `cryptopred backtest`).",
    no_args_is_help=True,
)


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more recorded run ids")],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default: under reports)")
    ] = None,
    self_contained: Annotated[
        bool | None,
        typer.Option(
            "--self-contained/--shared-plotly",
            help="Embed plotly.js (one file that works alone); default backtest.self_contained",
        ),
    ] = None,
) -> None:
    """One page with the runs' headline metrics side by side and their equity curves on one
    chart (different models, horizons, fees or periods). The last line is the page's path."""
    settings = require_settings(ctx.obj)
    runs = load_compared_runs(settings, run_ids)
    embed = settings.backtest.self_contained if self_contained is None else self_contained
    page = write_compare_page(
        runs, reports_dir=settings.backtest.reports_dir, out=out, self_contained=embed
    )
    for run in runs:
        typer.echo(f"{run.run_id}  {run.label}")
    typer.echo(str(page.resolve()))
