"""Figures of the trade list: the distribution of net P&L per trade."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from backtests.run import BacktestResult
from backtests.trade_stats import trade_returns

_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 30, "t": 60, "b": 50}}
_BINS = 60
_WIN, _LOSS = "#0072B2", "#D55E00"  # colour-blind-safe blue / vermillion


def pnl_distribution_figure(result: BacktestResult) -> go.Figure:
    """Histogram of the closed trades' net return (% of entry value), winners and losers apart.

    The counts are binned here (at most `_BINS` bars), so the figure stays small whatever the
    number of trades.
    """
    trades = result.selection.run.trades
    closed = trades[~trades["is_open"].astype(bool)]
    returns = trade_returns(closed).dropna().to_numpy(dtype="float64") * 100
    fig = go.Figure()
    if len(returns):
        edges = np.histogram_bin_edges(returns, bins=min(_BINS, max(len(returns), 1)))
        counts, _ = np.histogram(returns, bins=edges)
        centres = (edges[:-1] + edges[1:]) / 2
        for name, mask, color in (
            ("losing trades", centres < 0, _LOSS),
            ("winning trades", centres >= 0, _WIN),
        ):
            fig.add_bar(
                x=centres[mask], y=counts[mask], width=np.diff(edges)[mask], name=name,
                marker={"color": color},
                hovertemplate="%{x:.2f} %: %{y} trades<extra></extra>",
            )  # fmt: skip
    fig.add_vline(x=0, line={"color": "#555", "dash": "dot"})
    fig.update_xaxes(title_text="net return per trade (% of entry value)")
    fig.update_yaxes(title_text="trades")
    title = f"P&L distribution: {len(returns):,} closed trades ({result.selection.source})"
    fig.update_layout(title=title, bargap=0.02, height=380, **_LAYOUT)
    return fig


TRADE_FIGURES = {"pnl_distribution": pnl_distribution_figure}
"""Figure builders of the trades section, by chart id."""
