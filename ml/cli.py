"""The `cryptopred train` and `cryptopred models` commands."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.settings import require_settings
from core.types import ModelName
from data.candles import prepare_candles
from ml.evaluation import ClassificationMetrics
from ml.features import build_features
from ml.leakage import check_lookahead
from ml.registry import current_model_id, promote_model, read_manifest, scan_models
from ml.walk_forward import WalkForwardResult
from ml.workflow import train_model

logger = logging.getLogger(__name__)

models_app = typer.Typer(help="List, inspect and promote saved models.")
SCORE_NAMES = ("accuracy", "precision", "recall", "f1", "roc_auc")


def fmt_number(value: float | None, digits: int = 4) -> str:
    """A metric for a table; NaN and None print as '-'.

    >>> fmt_number(0.51234), fmt_number(float("nan"))
    ('0.5123', '-')
    """
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def _scores(metrics: ClassificationMetrics) -> list[str]:
    return [fmt_number(getattr(metrics, name)) for name in SCORE_NAMES]


def fold_table(result: WalkForwardResult, *, title: str) -> Table:
    """Per-fold and overall classification metrics next to the baselines and the p-value."""
    table = Table(title=title)
    table.add_column("fold", justify="right")
    table.add_column("test period")
    for column in ("n", "accuracy", "precision", "recall", "F1", "ROC-AUC"):
        table.add_column(column, justify="right")
    for fold in result.folds:
        period = f"{fold.test_start:%Y-%m-%d} .. {fold.test_end:%Y-%m-%d}"
        table.add_row(str(fold.number), period, f"{fold.metrics.n:,}", *_scores(fold.metrics))
    table.add_section()
    overall = result.metrics
    table.add_row("all", "out of sample", f"{overall.n:,}", *_scores(overall), style="bold")
    for name, accuracy in result.baselines.to_dict().items():
        table.add_row("baseline", name, "", fmt_number(accuracy), "", "", "", "")
    table.caption = significance_caption(result)
    return table


def significance_caption(result: WalkForwardResult) -> str:
    """One sentence: is the accuracy better than the best baseline, and the ROC-AUC interval."""
    sig = result.significance
    low, high = sig.roc_auc_ci
    verdict = "significant" if sig.p_value < 0.05 else "NOT significant"
    return (
        f"accuracy {sig.accuracy:.4f} vs best baseline {sig.baseline} {sig.baseline_accuracy:.4f}: "
        f"one-sided binomial p = {sig.p_value:.3g} ({verdict} at 5%); ROC-AUC {sig.roc_auc:.4f}, "
        f"{sig.level:.0%} block-bootstrap CI {low:.4f}-{high:.4f}"
    )


def fold_progress(console: Console) -> Progress:
    """A progress bar for walk-forward folds."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def train_command(
    ctx: typer.Context,
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="e.g. BTC/USDT")] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe", "-t", help="e.g. 1h")] = None,
    model: Annotated[ModelName | None, typer.Option("--model", "-m")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Import this candle file")] = None,
    tune: Annotated[bool, typer.Option("--tune", help="Optuna search per fold")] = False,
    check_leakage: Annotated[
        bool, typer.Option("--check-leakage", help="Verify no feature uses future candles")
    ] = False,
    promote: Annotated[
        bool | None,
        typer.Option("--promote/--no-promote", help="Make it current [default: if none is]"),
    ] = None,
) -> None:
    """Walk-forward evaluate a model, print the per-fold table, then save the final model."""
    settings = require_settings(ctx.obj)
    console = Console()
    prepared = prepare_candles(settings, file=data, symbol=symbol, timeframe=timeframe)
    if check_leakage:
        check_lookahead(prepared.frame, lambda frame: build_features(frame, settings.ml.features))
        console.print("Look-ahead check passed: past features never change when candles are added.")
    algorithm: ModelName = model or settings.ml.model.algorithm
    with fold_progress(console) as progress:
        task = progress.add_task(f"{algorithm} walk-forward folds", total=None)
        outcome = train_model(
            prepared.frame,
            settings,
            symbol=prepared.symbol,
            timeframe=prepared.timeframe,
            algorithm=algorithm,
            tune=True if tune else None,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    title = f"{algorithm} walk-forward, {prepared.symbol} {prepared.timeframe}"
    console.print(fold_table(outcome.walk_forward, title=title))
    root = settings.ml.registry_dir
    current = current_model_id(root, prepared.symbol, prepared.timeframe)
    if promote or (promote is None and current is None):
        promote_model(root, outcome.model_id)
        console.print(f"Promoted {outcome.model_id} to current {prepared.symbol} model")
    console.print(f"Saved model {outcome.model_id} in {root / outcome.model_id}")


@models_app.command("list")
def list_command(ctx: typer.Context) -> None:
    """Table of saved models with their out-of-sample metrics."""
    settings = require_settings(ctx.obj)
    root = settings.ml.registry_dir
    manifests, broken = scan_models(root)
    console = Console()
    for item in broken:  # one line each, never wrapped: grep-able
        console.print(f"BROKEN {item.model_id}: {item.reason}", highlight=False, soft_wrap=True)
    if not manifests:
        console.print(
            f"No {'readable ' if broken else ''}models in {root}; train one with `cryptopred train`"
        )
        return
    table = Table(title=f"Models in {root}")
    for column in ("model id", "current", "trained until", "OOS ROC-AUC", "OOS accuracy"):
        table.add_column(column)
    for manifest in manifests:
        is_current = current_model_id(root, manifest.symbol, manifest.timeframe)
        metrics = (manifest.walk_forward or {}).get("metrics", {})
        table.add_row(
            manifest.model_id,
            "*" if is_current == manifest.model_id else "",
            f"{manifest.train_end:%Y-%m-%d %H:%M}",
            fmt_number(metrics.get("roc_auc")),
            fmt_number(metrics.get("accuracy")),
        )
    console.print(table)


@models_app.command("show")
def show_command(ctx: typer.Context, model_id: Annotated[str, typer.Argument()]) -> None:
    """Print a model's manifest as JSON."""
    settings = require_settings(ctx.obj)
    manifest = read_manifest(settings.ml.registry_dir, model_id)
    typer.echo(json.dumps(json.loads(manifest.model_dump_json()), indent=2))


@models_app.command("promote")
def promote_command(ctx: typer.Context, model_id: Annotated[str, typer.Argument()]) -> None:
    """Make a model the current one for its symbol and timeframe."""
    settings = require_settings(ctx.obj)
    manifest = promote_model(settings.ml.registry_dir, model_id)
    typer.echo(f"{model_id} is now the current {manifest.symbol} {manifest.timeframe} model")
