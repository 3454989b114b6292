"""The compare page: recorded runs' headline metrics side by side, their equity on one chart."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from backtests.compare import ComparedRun
from backtests.headline import SYMBOLS, CardStatus, compare
from backtests.plotly_js import plotly_script
from backtests.plotting import HOLD_COLOR, LAYOUT, color_of, significant, utc_labels
from backtests.report_html import render_page

logger = logging.getLogger(__name__)

COMPARE_DIR = "compare"


@dataclass(frozen=True, slots=True)
class CompareRow:
    """One metric across the runs: its cells as text and a CSS class per cell (better/worse/'')."""

    name: str
    cells: tuple[str, ...]
    classes: tuple[str, ...]


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.2%}"


def _num(digits: int) -> Callable[[float | None], str]:
    def text(value: float | None) -> str:
        return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"

    return text


def _versus(
    name: str,
    runs: Sequence[ComparedRun],
    own: Callable[[ComparedRun], float | None],
    reference: Callable[[ComparedRun], float | None],
    text: Callable[[float | None], str],
) -> list[CompareRow]:
    """The metric, then buy-and-hold's; the run's cell marked when it beats buy-and-hold or not."""
    statuses = [compare(own(run), reference(run)) for run in runs]
    cells = tuple(
        _marked(text(own(run)), status) for run, status in zip(runs, statuses, strict=True)
    )
    return [
        CompareRow(
            name, cells, tuple("" if status == "neutral" else status for status in statuses)
        ),
        CompareRow(
            f"{name}, buy-and-hold", tuple(text(reference(run)) for run in runs), ("",) * len(runs)
        ),
    ]


def _marked(text: str, status: CardStatus) -> str:
    """The value with the headline cards' text mark (never colour alone): "-94.67 % ▼"."""
    return text if status == "neutral" else f"{text} {SYMBOLS[status]}"


def _plain(
    name: str, runs: Sequence[ComparedRun], cell: Callable[[ComparedRun], str]
) -> CompareRow:
    return CompareRow(name, tuple(cell(run) for run in runs), ("",) * len(runs))


def compare_rows(runs: Sequence[ComparedRun]) -> list[CompareRow]:
    """What differs between the runs (setup), then the headline metrics against buy-and-hold."""
    rows = [
        _plain("market", runs, lambda r: f"{r.symbol} {r.timeframe}"),
        _plain("models", runs, lambda r: ", ".join(r.models)),
        _plain("horizons (candles)", runs, lambda r: ", ".join(map(str, r.horizons))),
        _plain("decision", runs, lambda r: r.decision_mode),
        _plain("fee per side", runs, lambda r: f"{r.fee_bps:g} bps"),
        _plain("tested", runs, lambda r: f"{r.period_start:%Y-%m-%d} → {r.period_end:%Y-%m-%d}"),
        _plain("candles", runs, lambda r: f"{r.n_candles:,}"),
    ]
    rows += _versus(
        "net return", runs, lambda r: r.total_return, lambda r: r.buy_and_hold_return, _pct
    )
    rows += _versus("Sharpe", runs, lambda r: r.sharpe, lambda r: r.buy_and_hold_sharpe, _num(2))
    rows += _versus(
        "max drawdown",
        runs,
        lambda r: r.max_drawdown,
        lambda r: r.buy_and_hold_max_drawdown,
        _pct,
    )
    rows += [
        _plain("trades", runs, lambda r: "-" if r.n_trades is None else f"{r.n_trades:,}"),
        _plain("exposure", runs, lambda r: _pct(r.exposure).lstrip("+")),
        _plain("ROC-AUC (leading model)", runs, lambda r: _num(4)(r.roc_auc)),
        _plain("p-value vs best baseline", runs, lambda r: _num(4)(r.p_value)),
        _plain("break-even fee", runs, lambda r: _bps(r.break_even_bps)),
    ]
    return rows


def _bps(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} bps"


def compare_figure(runs: Sequence[ComparedRun]) -> go.Figure:
    """Each run's traded path as the growth of 1 (log axis), with buy-and-hold of each distinct
    market and period dotted."""
    fig = go.Figure()
    held: set[tuple[str, str, str, str]] = set()
    for position, run in enumerate(runs):
        if run.equity is None or run.buy_and_hold_equity is None:
            continue
        _add_growth(
            fig, run.equity, name=f"{run.run_id[:24]}: {run.label}", color=color_of(position)
        )
        key = (run.symbol, run.timeframe, str(run.period_start), str(run.period_end))
        if key not in held:
            held.add(key)
            name = (
                f"buy-and-hold {run.symbol} {run.period_start:%Y-%m-%d}→{run.period_end:%Y-%m-%d}"
            )
            _add_growth(fig, run.buy_and_hold_equity, name=name, color=HOLD_COLOR, dash="dot")
    fig.update_layout(
        title="Equity after costs, as the growth of 1 (log axis)",
        yaxis={"title": "growth of 1 (log)", "type": "log"},
        xaxis={"title": "UTC"},
        legend={"orientation": "h", "y": -0.2},
        height=560,
        **LAYOUT,
    )
    return fig


def _add_growth(
    fig: go.Figure, equity: pd.Series, *, name: str, color: str, dash: str | None = None
) -> None:
    growth = equity / equity.iloc[0]
    fig.add_scatter(
        x=utc_labels(growth.index),
        y=significant(growth),
        mode="lines",
        name=name,
        line={"color": color, "width": 1.4, "dash": dash},
    )


def compare_path(reports_dir: Path, run_ids: Sequence[str]) -> Path:
    """`<reports_dir>/compare/<hash of the ids>.html`: the same runs always land in one file."""
    digest = hashlib.sha256("\n".join(run_ids).encode()).hexdigest()[:12]
    return reports_dir / COMPARE_DIR / f"{digest}.html"


def write_compare_page(
    runs: Sequence[ComparedRun], *, reports_dir: Path, out: Path | None, self_contained: bool
) -> Path:
    """Render the compare page to `out` (default `compare_path`) and return its path."""
    page = out or compare_path(reports_dir, [run.run_id for run in runs])
    page.parent.mkdir(parents=True, exist_ok=True)
    chart = pio.to_html(
        compare_figure(runs),
        include_plotlyjs=False,
        full_html=False,
        div_id="chart-compare",
        config={"responsive": True, "displaylogo": False},
    )
    links = [_link(run.report_html, page) for run in runs]
    html = render_page(
        "compare.html",
        runs=runs,
        rows=compare_rows(runs),
        links=links,
        chart=chart,
        missing=[run.run_id for run in runs if run.equity is None],
        plotly=plotly_script(page, reports_dir, self_contained=self_contained),
    )
    page.write_text(html, encoding="utf-8")
    logger.info("Wrote %s (%.0f kB)", page, page.stat().st_size / 1e3)
    return page


def _link(report: Path | None, page: Path) -> str | None:
    if report is None:
        return None
    return Path(os.path.relpath(report.resolve(), page.parent.resolve())).as_posix()
