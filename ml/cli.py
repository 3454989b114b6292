"""The `cryptopred train` and `cryptopred models` commands."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from core.errors import ConfigError
from core.settings import Settings, require_settings
from core.types import MODEL_NAMES, ModelName
from data.candles import PreparedCandles, prepare_candles
from ml.evaluation import ClassificationMetrics
from ml.features import build_features
from ml.leakage import check_lookahead
from ml.policy_search import describe_policy
from ml.registry import (
    ValidatedPolicy,
    current_model_id,
    read_manifest,
    scan_models,
)
from ml.walk_forward import WalkForwardResult
from ml.workflow import select_and_train, train_model

logger = logging.getLogger(__name__)

models_app = typer.Typer(help="List, inspect and promote saved models.")
Promoter = Callable[[Settings, str], object]
"""Makes a saved model current and records the promotion (see `make_train_command`)."""
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
    """A progress bar for walk-forward folds (and sweep tasks): done/total, elapsed, ETA.

    The ETA extrapolates the mean time per step so far; expanding folds get slower as their
    training window grows, so early in a long walk-forward it is optimistic.
    """
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def make_train_command(*, promoter: Promoter) -> Callable[..., None]:
    """The `cryptopred train` command; `promoter` makes a saved model current and records the
    audit event (`serving.promotion.promote_with_settings`, wired by `cli.main`: `ml` may
    not import the database)."""

    def train_command(
        ctx: typer.Context,
        symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="e.g. BTC/USDT")] = None,
        timeframe: Annotated[str | None, typer.Option("--timeframe", "-t", help="e.g. 1h")] = None,
        model: Annotated[ModelName | None, typer.Option("--model", "-m")] = None,
        data: Annotated[Path | None, typer.Option("--data", help="Import this candle file")] = None,
        offline: Annotated[
            bool, typer.Option("--offline", help="Use the cached candles (no network, no file)")
        ] = False,
        tune: Annotated[bool, typer.Option("--tune", help="Optuna search per fold")] = False,
        check_leakage: Annotated[
            bool, typer.Option("--check-leakage", help="Verify no feature uses future candles")
        ] = False,
        promote: Annotated[
            bool | None,
            typer.Option("--promote/--no-promote", help="Make it current [default: if none is]"),
        ] = None,
        models: Annotated[
            str | None,
            typer.Option("--models", help="Comma-separated models to compare (with --select)"),
        ] = None,
        select: Annotated[
            bool,
            typer.Option(
                "--select", help="Save and promote the best of --models by the nested rule"
            ),
        ] = False,
    ) -> None:
        """Walk-forward evaluate a model, validate its decision policy, save the final model.

        With --models a,b,c --select every model is walk-forwarded and the (model, policy) pair is
        chosen by the same nested rule as the backtest; only the chosen model is saved and promoted.
        Candles come from --data, --offline (the candle cache, filled by `cryptopred data
        import`/`fetch`) or the exchange (never the bundled sample: a trained model may go live).
        """
        settings = require_settings(ctx.obj)
        console = Console()
        if models is not None and not select:
            raise ConfigError("--models compares several models: add --select (or use --model)")
        names = parse_model_names(models or ",".join(settings.backtest.models)) if select else []
        prepared = prepare_candles(
            settings, file=data, symbol=symbol, timeframe=timeframe, offline=offline
        )
        if check_leakage:
            check_lookahead(
                prepared.frame, lambda frame: build_features(frame, settings.ml.features)
            )
            console.print(
                "Look-ahead check passed: past features never change when candles are added."
            )
        if select:
            _select_command(
                settings, prepared, names, tune=tune, console=console, promoter=promoter
            )
            return
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
        if outcome.manifest.decision is not None:
            console.print(policy_summary(outcome.manifest.decision), highlight=False)
        root = settings.ml.registry_dir
        current = current_model_id(root, prepared.symbol, prepared.timeframe)
        if promote or (promote is None and current is None):
            promoter(settings, outcome.model_id)
            console.print(f"Promoted {outcome.model_id} to current {prepared.symbol} model")
        console.print(f"Saved model {outcome.model_id} in {root / outcome.model_id}")

    return train_command


def policy_summary(decision: ValidatedPolicy) -> str:
    """Two lines: the policy the model will trade, and the nested evidence behind it."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1%}"

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    return (
        f"Decision policy saved with the model: {describe_policy(decision.policy)}\n"
        f"  chosen by {decision.chosen_by}; nested backtest of the rule "
        f"{pct(decision.nested_net_return)} net vs buy-and-hold "
        f"{pct(decision.nested_buy_and_hold_return)}, "
        f"DSR {num(decision.deflated_sharpe)}, PBO {num(decision.probability_of_overfitting)} "
        f"({decision.n_candidates} candidates)"
    )


def parse_model_names(text: str) -> list[ModelName]:
    """Comma-separated model names.

    >>> parse_model_names("logreg, lightgbm")
    ['logreg', 'lightgbm']

    Raises:
        ConfigError: an unknown name.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODEL_NAMES]
    if unknown or not names:
        raise ConfigError(
            f"--models: unknown model name(s) {[n[:40] for n in unknown[:5]] or [text[:40]]}; "
            f"allowed: {', '.join(MODEL_NAMES)}"
        )
    return list(dict.fromkeys(names))  # type: ignore[arg-type]  # checked just above


def _select_command(
    settings: Settings,
    prepared: PreparedCandles,
    names: list[ModelName],
    *,
    tune: bool,
    console: Console,
    promoter: Promoter,
) -> None:
    with fold_progress(console) as progress:
        tasks: dict[str, TaskID] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(f"{name} walk-forward folds", total=total)
            progress.update(tasks[name], completed=done, total=total)

        selection = select_and_train(
            prepared.frame,
            settings,
            symbol=prepared.symbol,
            timeframe=prepared.timeframe,
            algorithms=names,
            tune=True if tune else None,
            progress=report,
        )
    for name, result in selection.walk_forwards.items():
        title = f"{name} walk-forward, {prepared.symbol} {prepared.timeframe}"
        console.print(fold_table(result, title=title))
    console.print(policy_summary(selection.decision), highlight=False)
    if selection.chosen is None:
        console.print(
            "No model x policy beat staying flat by the evidence rule: nothing saved or promoted."
        )
        return
    root = settings.ml.registry_dir
    promoter(settings, selection.chosen.model_id)
    console.print(
        f"Selected {selection.chosen.walk_forward.algorithm}: saved {selection.chosen.model_id} "
        f"in {root / selection.chosen.model_id} and promoted it to current {prepared.symbol} model"
    )


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
        metrics = manifest.walk_forward.metrics if manifest.walk_forward else {}
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
