"""The offline HTML page of a backtest run: Jinja2 templates, number filters, Plotly fragments."""

from __future__ import annotations

from typing import Any

import jinja2
import plotly.graph_objects as go
import plotly.io as pio

from backtests.charts import FIGURES
from backtests.conclusions import in_sample_warning
from backtests.decision_report import DECISION_FIGURES, describe_fixed
from backtests.formatting import TEMPLATE_FILTERS
from backtests.plotly_js import PlotlyScript
from backtests.run import BacktestResult
from backtests.trade_charts import TRADE_FIGURES
from backtests.trade_stats import rows_to_show
from strategy.costs import to_bps

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("backtests", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)
_TEMPLATES.filters.update(TEMPLATE_FILTERS)
TRADE_ROWS_SHOWN = 500
"""Trades listed on the page (plus the best and worst `TRADE_EXTREMES_SHOWN`); the JSON has all."""
TRADE_EXTREMES_SHOWN = 10


def chart_div(fig: go.Figure, div_id: str) -> str:
    """One figure as an HTML fragment (div + script) that expects `Plotly` to be loaded."""
    return pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        config={"responsive": True, "displaylogo": False},
    )


def chart_divs(result: BacktestResult, *, prefix: str = "") -> dict[str, str]:
    """Each chart as an HTML fragment (div + script) that expects `Plotly` to be loaded.

    Keys (and div ids after `chart-`) are `prefix + name`: unique when one page shows several runs.
    """
    figures = {name: build(result) for name, build in {**DECISION_FIGURES, **FIGURES}.items()}
    return {  # a chart with nothing to show (no trade to zoom on) is left out
        prefix + name: chart_div(figure, f"chart-{prefix}{name}")
        for name, figure in figures.items()
        if figure is not None
    }


def trades_context(
    result: BacktestResult, trades: dict[str, Any], *, prefix: str
) -> dict[str, Any]:
    """The trade list's rows on the page (capped) and its P&L histogram (None without trades)."""
    rows = trades["rows"]
    shown = rows_to_show(rows, limit=TRADE_ROWS_SHOWN, extremes=TRADE_EXTREMES_SHOWN)
    charts = {
        prefix + name: chart_div(build(result), f"chart-{prefix}{name}")
        for name, build in TRADE_FIGURES.items()
    }
    has_closed = trades["statistics"]["n_trades"] > 0
    return {
        "rows": shown,
        "n_rows": len(rows),
        "capped": len(shown) < len(rows),
        "limit": TRADE_ROWS_SHOWN,
        "extremes": TRADE_EXTREMES_SHOWN,
        "charts": charts if has_closed else {},
        "table_id": f"trades-{prefix}table" if prefix else "trades-table",
    }


def run_context(
    result: BacktestResult, payload: dict[str, Any], *, chart_prefix: str = ""
) -> dict[str, Any]:
    """What the `_run.html` partial (one run's sections) needs, `payload` from `report_payload`."""
    return {
        "report": payload,
        "models": payload["models"],
        "in_sample": [in_sample_warning(m) for m in result.models if m.in_sample],
        "charts": chart_divs(result, prefix=chart_prefix),
        "trade_list": trades_context(result, payload["trades"], prefix=chart_prefix),
        "fee_bps": to_bps(result.settings.strategy.fee_rate),
        "policy_line": describe_fixed(result),
    }


def render_page(template_name: str, **context: Any) -> str:
    """Render one of the backtest templates (`report.html`, `sweep.html`, `compare.html`)."""
    return _TEMPLATES.get_template(template_name).render(**context)


def render_html(result: BacktestResult, payload: dict[str, Any], *, plotly: PlotlyScript) -> str:
    """The report page: banners, verdict, tables from `payload`, then the charts."""
    return render_page("report.html", plotly=plotly, **run_context(result, payload))
