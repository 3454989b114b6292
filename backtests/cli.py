"""The `cryptopred backtest` command: progress bars, the console report and the HTML path."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from backtests.conclusions import verdict_lines
from backtests.decision_console import decision_table
from backtests.formatting import fmt_num, fmt_pct
from backtests.headline import headline
from backtests.headline_console import print_headline
from backtests.output import check_reports_dir, save_report, sharing_hint
from backtests.report import ReportFiles, write_report
from backtests.run import BacktestProgress, BacktestResult, ModelBacktest, Segment, run_backtest
from backtests.run_record import record_run
from backtests.sweep import (
    SweepResult,
    check_candle_sources,
    parse_symbols,
    prepare_sweep_candles,
    run_sweep,
)
from backtests.sweep_report import record_sweep, sweep_verdict, write_sweep_report
from core.errors import ConfigError
from core.settings import BacktestSettings, Settings, require_settings
from core.types import MODEL_NAMES, ModelName
from data.candles import prepare_candles
from ml.cli import fold_progress, parse_model_names
from ml.registry import read_manifest

logger = logging.getLogger(__name__)

_CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc")


def parse_models(text: str) -> tuple[ModelName, ...]:
    """Comma-separated model names, checked against the allowed list (`ml.cli.parse_model_names`).

    >>> parse_models("lightgbm, logreg")
    ('lightgbm', 'logreg')

    Raises:
        ConfigError: an unknown name (the message lists the allowed ones).
    """
    return tuple(parse_model_names(text))


def with_overrides(
    settings: Settings,
    *,
    start: str | None,
    end: str | None,
    out: Path | None,
    self_contained: bool | None = None,
) -> Settings:
    """Settings with `--start/--end/--out/--self-contained` applied and validated like
    config.yaml values.

    Raises:
        ConfigError: an unparsable date or start >= end.
    """
    values = settings.backtest.model_dump()
    values.update({k: v for k, v in (("start", start), ("end", end)) if v is not None})
    if out is not None:
        values["reports_dir"] = out
    if self_contained is not None:
        values["self_contained"] = self_contained
    try:
        backtest = BacktestSettings.model_validate(values)
    except (ValidationError, ValueError) as e:
        detail = (
            "; ".join(err["msg"] for err in e.errors()) if isinstance(e, ValidationError) else e
        )
        raise ConfigError(
            f"--start/--end: {detail} (use e.g. 2020-01-01 or 2020-01-01T12:00)"
        ) from e
    return settings.model_copy(update={"backtest": backtest})


def parse_horizons(text: str) -> tuple[int, ...]:
    """Comma-separated positive candle counts.

    >>> parse_horizons("1, 4,24")
    (1, 4, 24)

    Raises:
        ConfigError: not a list of positive integers.
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise ConfigError(f"--horizons: expected positive whole numbers like 1,4,24, got {text!r}")
    return tuple(dict.fromkeys(int(part) for part in parts))


def with_decision_overrides(
    settings: Settings, *, horizons: str | None, decision: str | None
) -> Settings:
    """Settings with `--horizons` and `--decision` applied.

    Raises:
        ConfigError: an invalid value.
    """
    if horizons is not None:
        backtest = settings.backtest.model_copy(update={"horizons": parse_horizons(horizons)})
        settings = settings.model_copy(update={"backtest": backtest})
    if decision is not None:
        if decision not in ("auto", "fixed"):
            raise ConfigError(f"--decision: expected auto or fixed, got {decision[:40]!r}")
        cfg = settings.decision.model_copy(update={"mode": decision})
        settings = settings.model_copy(update={"decision": cfg})
    return settings


class _ProgressBars:
    """One rich task per (stage, algorithm), created on first use."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[tuple[str, str], TaskID] = {}

    def __call__(self, event: BacktestProgress) -> None:
        key = (event.stage, event.algorithm)
        if key not in self._tasks:
            label = "walk-forward folds" if event.stage == "folds" else "backtest + fee sweep"
            self._tasks[key] = self._progress.add_task(f"{event.algorithm} {label}", total=None)
        self._progress.update(self._tasks[key], completed=event.done, total=event.total)


@contextmanager
def _bars(console: Console) -> Iterator[_ProgressBars]:
    with fold_progress(console) as progress:
        yield _ProgressBars(progress)


def backtest_command(
    ctx: typer.Context,
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="e.g. BTC/USDT")] = None,
    symbols: Annotated[
        str | None,
        typer.Option(
            "--symbols", help="Comma-separated symbols: a sweep of every symbol x model pair"
        ),
    ] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe", "-t", help="e.g. 1h")] = None,
    models: Annotated[
        str | None,
        typer.Option("--models", "-m", help=f"Comma-separated: {','.join(MODEL_NAMES)}"),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="First candle used (train AND test), UTC")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Last candle used (train AND test), UTC")
    ] = None,
    data: Annotated[
        list[Path] | None,
        typer.Option("--data", help="Import this candle file (repeat: one per --symbols entry)"),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use the cached candles (no network, no file)")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Reports directory")] = None,
    self_contained: Annotated[
        bool | None,
        typer.Option(
            "--self-contained/--shared-plotly",
            help="Embed plotly.js (+4.8 MB): one report.html that works alone; "
            "default backtest.self_contained",
        ),
    ] = None,
    model_id: Annotated[
        str | None, typer.Option("--model-id", help="Backtest this saved model (no retraining)")
    ] = None,
    horizons: Annotated[
        str | None,
        typer.Option("--horizons", help="Comma-separated label horizons in candles, e.g. 1,4,24"),
    ] = None,
    decision: Annotated[
        str | None,
        typer.Option("--decision", help="auto (nested policy choice) or fixed (decision.policy)"),
    ] = None,
) -> None:
    """Walk-forward backtest: per-fold classification next to trading metrics, JSON + HTML.

    --start/--end restrict the candles used for training AND testing. With --model-id a saved
    model predicts the whole period instead (flagged when it overlaps its training data).
    --symbols with several symbols runs a sweep: one walk-forward backtest per (symbol, model)
    pair, dispatched through `compute` (local or Dask), and one report with a leaderboard.
    Candles come from --data (one file per symbol, in order), --offline (the candle cache,
    filled by `cryptopred data import`/`fetch`) or the exchange; when the exchange cannot be
    reached and nothing is cached, a single-symbol backtest runs on the bundled sample of that
    market, if there is one, and says so. The last line printed is the path of the HTML report.
    """
    settings = with_overrides(
        require_settings(ctx.obj), start=start, end=end, out=out, self_contained=self_contained
    )
    settings = with_decision_overrides(settings, horizons=horizons, decision=decision)
    if model_id is not None and models is not None:
        raise ConfigError("pass either --models (walk-forward) or --model-id (a saved model)")
    algorithms = parse_models(models) if models is not None else settings.backtest.models
    targets = _symbols_option(symbol, symbols, model_id=model_id)
    sources = tuple(data or ())
    if len(targets) > 1:
        sweep_command(
            settings,
            targets,
            algorithms=algorithms,
            files=sources,
            timeframe=timeframe,
            offline=offline,
        )
        return
    single_command(
        settings,
        targets[0] if targets else symbol,
        algorithms=algorithms,
        files=sources,
        timeframe=timeframe,
        offline=offline,
        model_id=model_id,
    )


def single_command(
    settings: Settings,
    symbol: str | None,
    *,
    algorithms: Sequence[ModelName],
    files: Sequence[Path],
    timeframe: str | None,
    offline: bool,
    model_id: str | None,
) -> None:
    """Backtest one symbol (several models, or one saved model), report, record and print."""
    check_reports_dir(settings.backtest.reports_dir)  # before the work, not after it
    check_candle_sources(settings, [symbol or settings.data.symbol], files=files, offline=offline)
    if model_id is not None:
        manifest = read_manifest(settings.ml.registry_dir, model_id)
        symbol, timeframe = symbol or manifest.symbol, timeframe or manifest.timeframe
    prepared = prepare_candles(
        settings,
        file=files[0] if files else None,
        symbol=symbol,
        timeframe=timeframe,
        offline=offline,
        sample_fallback=True,
    )
    with _bars(Console(stderr=True)) as bars:
        result = run_backtest(
            prepared.frame,
            settings,
            symbol=prepared.symbol,
            timeframe=prepared.timeframe,
            algorithms=algorithms,
            model_id=model_id,
            progress=bars,
        )
    result = replace(result, data_source=prepared.describe(), is_sample=prepared.is_sample)
    print_report(result, Console())  # first: kept even if the files cannot be written
    embed = settings.backtest.self_contained
    saved = save_report(
        lambda d: write_report(result, d, self_contained=embed), settings.backtest.reports_dir
    )
    record_run(result, saved.files, settings)
    _echo_paths(saved.files)
    saved.raise_if_moved()


def _symbols_option(
    symbol: str | None, symbols: str | None, *, model_id: str | None
) -> tuple[str, ...]:
    """The --symbols list (empty when only --symbol, or neither, was given)."""
    if symbols is None:
        return ()
    if symbol is not None:
        raise ConfigError("pass either --symbol or --symbols, not both")
    targets = parse_symbols(symbols)
    if len(targets) > 1 and model_id is not None:
        raise ConfigError(
            "--model-id backtests one saved model on one symbol; drop --model-id to sweep "
            "--symbols, or pass a single symbol"
        )
    return targets


def sweep_command(
    settings: Settings,
    symbols: Sequence[str],
    *,
    algorithms: Sequence[ModelName],
    files: Sequence[Path],
    timeframe: str | None,
    offline: bool,
) -> None:
    """Run a symbols x models sweep, write its report, record it, print the leaderboard."""
    check_reports_dir(settings.backtest.reports_dir)
    prepared = prepare_sweep_candles(
        settings, symbols, files=files, timeframe=timeframe, offline=offline
    )
    candles = {symbol: item.frame for symbol, item in prepared.items()}
    resolved = prepared[symbols[0]].timeframe
    with fold_progress(Console(stderr=True)) as progress:
        total = len(candles) * len(dict.fromkeys(algorithms))
        task = progress.add_task("sweep: (symbol, model) backtests", total=total)
        sweep = run_sweep(
            candles,
            settings,
            timeframe=resolved,
            algorithms=algorithms,
            on_task=lambda result: progress.advance(task),
        )
    print_sweep(sweep, Console())
    embed = settings.backtest.self_contained
    saved = save_report(
        lambda d: write_sweep_report(sweep, d, self_contained=embed), settings.backtest.reports_dir
    )
    record_sweep(sweep, saved.files, settings)
    _echo_paths(saved.files)
    saved.raise_if_moved()


# ----------------------------------------------------------------------------- console
def print_report(result: BacktestResult, console: Console) -> None:
    """The console report: banners, the headline cards, per-fold tables, leaderboard, verdict."""
    if result.data_source:
        style = "bold white on red" if result.is_sample else ""
        console.print(f"Data: {result.data_source}", style=style, highlight=False)
    for model in result.models:
        if model.in_sample:
            console.print(
                f"[bold white on red] IN-SAMPLE [/] {model.in_sample_bars:,} tested candles are "
                f"inside the training range of {model.model_id}: not evidence."
            )
    print_headline(headline(result), console)
    for model in result.models:
        console.print(segment_table(result, model))
    if len(result.models) > 1:
        console.print(leaderboard_table(result))
    console.print(decision_table(result))
    console.print("[bold]Verdict[/bold]")
    for line in verdict_lines(result):
        style = "bold red" if any(w in line for w in ("LOST", "IN-SAMPLE", "NOT beat")) else ""
        console.print(f"  - {line}", style=style, highlight=False)


def _score_cells(metrics: Any) -> list[str]:
    if metrics is None:
        return ["-"] * (len(_CLASSIFICATION) + 1)
    return [f"{metrics.n:,}", *(fmt_num(getattr(metrics, name)) for name in _CLASSIFICATION)]


def _pct(value: float, *, signed: bool = True) -> str:
    """Compact percent for the console: fmt_pct without the space."""
    return fmt_pct(value, signed=signed).replace(" %", "%")


def _trading_cells(trading: Any) -> list[str]:
    return [
        _pct(trading.total_return),
        fmt_num(trading.sharpe, 2),
        _pct(trading.max_drawdown),
        f"{trading.n_trades:,}",
        _pct(trading.win_rate, signed=False),
        _pct(trading.buy_and_hold_return),
    ]


def _segment_row(segment: Segment) -> list[str]:
    period = f"{segment.start:%Y-%m-%d} .. {segment.end:%Y-%m-%d}"
    return [
        segment.label,
        period,
        *_score_cells(segment.classification),
        *_trading_cells(segment.trading),
    ]


def segment_table(result: BacktestResult, model: ModelBacktest) -> Table:
    """Per fold: classification | trading | buy-and-hold; then totals and baselines."""
    name = model.model_id or model.name
    title = f"{name}: {result.symbol} {result.timeframe}, {result.mode.replace('_', '-')} backtest"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("fold", no_wrap=True)
    table.add_column("test period", no_wrap=True)
    for column in ("n", "accuracy", "prec.", "recall", "F1"):
        table.add_column(column, justify="right")
    table.add_column("ROC-AUC", justify="right")
    for column in ("return", "Sharpe", "max DD", "trades", "win rate", "B&H return"):
        table.add_column(column, justify="right")
    for segment in model.segments:
        table.add_row(*_segment_row(segment))
    table.add_section()
    period = f"{result.period_start:%Y-%m-%d} .. {result.period_end:%Y-%m-%d}"
    totals = [*_score_cells(model.classification), *_trading_cells(model.trading)]
    table.add_row("all", period, *totals, style="bold")
    for baseline, accuracy in model.baselines.to_dict().items():
        table.add_row("baseline", baseline, "", fmt_num(accuracy), *[""] * 10)
    table.add_row(
        "context", "prev. return AUC", "", "", "", "", "", fmt_num(model.previous_return_auc)
    )
    sig, fees = model.significance, model.fee_sensitivity
    verdict = "significant" if sig.is_significant() else "NOT significant"
    table.caption = (
        f"accuracy {sig.accuracy:.4f} vs best baseline {sig.baseline} "
        f"{sig.baseline_accuracy:.4f}: binomial p = {sig.p_value:.3g} ({verdict} at 5%); "
        f"ROC-AUC {sig.roc_auc:.4f} CI {sig.roc_auc_ci[0]:.4f}-{sig.roc_auc_ci[1]:.4f}. "
        f"Fees: {fees.note}."
    )
    return table


_LEADERBOARD_COLUMNS = ("accuracy", "ROC-AUC", "p-value", "return", "vs B&H", "Sharpe")
_LEADERBOARD_TAIL = ("max DD", "trades", "break-even")


def _leaderboard_cells(model: ModelBacktest) -> list[str]:
    """The cells of `_LEADERBOARD_COLUMNS + _LEADERBOARD_TAIL` for one model."""
    break_even = model.fee_sensitivity.break_even_bps
    return [
        fmt_num(model.classification.accuracy),
        fmt_num(model.classification.roc_auc),
        f"{model.significance.p_value:.3g}",
        _pct(model.trading.total_return),
        f"{model.excess_return * 100:+.1f} pp",
        fmt_num(model.trading.sharpe, 2),
        _pct(model.trading.max_drawdown),
        f"{model.trading.n_trades:,}",
        "-" if break_even is None else f"{break_even:.2f} bps",
    ]


def _leaderboard(title: str, head: Sequence[str]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in (*head, *_LEADERBOARD_COLUMNS, *_LEADERBOARD_TAIL):
        table.add_column(column, justify="left" if column in {"model", "symbol"} else "right")
    return table


def leaderboard_table(result: BacktestResult) -> Table:
    """One row per model, best strategy return first, same candles and folds for all."""
    table = _leaderboard("Leaderboard (same candles and folds for every model)", ("#", "model"))
    for rank, model in enumerate(result.leaderboard(), start=1):
        table.add_row(str(rank), model.model_id or model.name, *_leaderboard_cells(model))
    return table


def sweep_leaderboard_table(sweep: SweepResult) -> Table:
    """One row per (symbol, model), best return in excess of the symbol's buy-and-hold first."""
    title = (
        f"Sweep leaderboard: {len(sweep.symbols)} symbols x {len(sweep.algorithms)} models, "
        f"{sweep.timeframe} (ranked by return vs the symbol's buy-and-hold)"
    )
    table = _leaderboard(title, ("#", "symbol", "model", "B&H"))
    for rank, (run, model) in enumerate(sweep.leaderboard(), start=1):
        hold = _pct(run.buy_and_hold.total_return)
        table.add_row(str(rank), run.symbol, model.algorithm, hold, *_leaderboard_cells(model))
    return table


def print_sweep(sweep: SweepResult, console: Console) -> None:
    """The sweep's console report: the leaderboard, the verdict and where it ran."""
    console.print(sweep_leaderboard_table(sweep))
    console.print("[bold]Verdict[/bold]")
    for line in sweep_verdict(sweep):
        console.print(f"  - {line}", highlight=False)
    compute = sweep.settings.compute
    where: str = compute.backend
    if compute.backend == "dask":
        where += f" ({compute.scheduler_address})"
    console.print(
        f"{len(sweep.task_seconds)} backtests on the {where} backend in {sweep.seconds:.1f} s "
        f"(task time {sum(sweep.task_seconds):.1f} s); per-symbol details in the HTML report.",
        highlight=False,
    )


def _echo_paths(files: ReportFiles) -> None:
    """The sharing hint (stderr), then the page's path: the last line on stdout."""
    hint = sharing_hint(files.plotly_js)
    if hint:
        typer.echo(hint, err=True)
    typer.echo(str(files.html.resolve()))
