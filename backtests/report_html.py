"""The offline HTML page of a backtest run: Jinja2 templates, number filters, Plotly fragments."""

from __future__ import annotations

from typing import Any

import jinja2
import plotly.io as pio

from backtests.charts import FIGURES
from backtests.conclusions import in_sample_warning
from backtests.decision_report import DECISION_FIGURES, describe_fixed
from backtests.formatting import TEMPLATE_FILTERS
from backtests.run import BacktestResult
from strategy.costs import to_bps

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("backtests", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)
_TEMPLATES.filters.update(TEMPLATE_FILTERS)


def chart_divs(result: BacktestResult, *, prefix: str = "") -> dict[str, str]:
    """Each chart as an HTML fragment (div + script) that expects `Plotly` to be loaded.

    Keys (and div ids after `chart-`) are `prefix + name`: unique when one page shows several runs.
    """
    return {
        prefix + name: pio.to_html(
            build(result),
            include_plotlyjs=False,
            full_html=False,
            div_id=f"chart-{prefix}{name}",
            config={"responsive": True, "displaylogo": False},
        )
        for name, build in {**DECISION_FIGURES, **FIGURES}.items()
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
        "fee_bps": to_bps(result.settings.strategy.fee_rate),
        "policy_line": describe_fixed(result),
    }


def render_page(template_name: str, **context: Any) -> str:
    """Render one of the backtest templates (`report.html`, `sweep.html`)."""
    return _TEMPLATES.get_template(template_name).render(**context)


def render_html(result: BacktestResult, payload: dict[str, Any], *, plotly_src: str) -> str:
    """The report page: banners, verdict, tables from `payload`, then the charts."""
    return render_page("report.html", plotly_src=plotly_src, **run_context(result, payload))
